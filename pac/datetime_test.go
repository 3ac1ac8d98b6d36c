package pac

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// cet is a fixed UTC+1 zone, so that "GMT" and local time differ.
var cet = time.FixedZone("CET", 3600)

// TestDateTimeFunctions checks weekdayRange, dateRange and timeRange
// against the browsers' algorithm, quirks included. Each case names the
// instant (UTC) and evaluates in UTC+1.
func TestDateTimeFunctions(t *testing.T) {
	mon := "2026-11-23T10:30:15.250Z" // Monday; 11:30:15.250 local
	tests := []struct {
		now, expr, want string
	}{
		{mon, `weekdayRange("MON")`, "true"},
		{mon, `weekdayRange("TUE")`, "false"},
		{mon, `weekdayRange("SUN", "TUE")`, "true"},
		{mon, `weekdayRange("TUE", "SUN")`, "false"}, // wraps: TUE..SAT, SUN
		{mon, `weekdayRange("SAT", "MON")`, "true"},
		{mon, `weekdayRange("MON", "GMT")`, "true"},
		{mon, `weekdayRange("TUE", "WED", "THU")`, "false"}, // three days: only the first counts
		{mon, `weekdayRange("GMT")`, "false"},
		{mon, `weekdayRange()`, "false"},
		{mon, `weekdayRange("mon")`, "false"},
		{mon, `weekdayRange("toString")`, "false"},
		// Sunday 23:30 UTC is Monday 00:30 in UTC+1.
		{"2026-11-22T23:30:00Z", `weekdayRange("MON")`, "true"},
		{"2026-11-22T23:30:00Z", `weekdayRange("MON", "GMT")`, "false"},
		{"2026-11-22T23:30:00Z", `weekdayRange("SUN", "GMT")`, "true"},

		{mon, `dateRange(23)`, "true"},
		{mon, `dateRange(22)`, "false"},
		{mon, `dateRange("NOV")`, "true"},
		{mon, `dateRange("DEC")`, "false"},
		{mon, `dateRange(2026)`, "true"},
		{mon, `dateRange(2025)`, "false"},
		{mon, `dateRange("23")`, "true"}, // parseInt of a string
		{mon, `dateRange("FOO")`, "false"},
		{mon, `dateRange("toString")`, "false"},
		{mon, `dateRange()`, "false"},
		{mon, `dateRange(1, 31)`, "true"}, // days of the current month
		{mon, `dateRange(24, 31)`, "false"},
		{mon, `dateRange("SEP", "FEB")`, "true"}, // wraps over the new year
		{mon, `dateRange("JAN", "MAR")`, "false"},
		{mon, `dateRange("OCT", "NOV")`, "true"},
		{mon, `dateRange(1, "NOV", 30, "NOV")`, "true"},
		{mon, `dateRange(24, "NOV", 30, "NOV")`, "false"},
		{mon, `dateRange("NOV", 2026, "DEC", 2026)`, "true"},
		{mon, `dateRange(1, "JAN", 2026, 31, "DEC", 2026)`, "true"},
		{mon, `dateRange(1, "JAN", 2027, 31, "DEC", 2027)`, "false"},
		{mon, `dateRange(2020, 2030)`, "true"},
		{mon, `dateRange(2027, 2030)`, "false"},
		// December 31 set to February rolls over to March 3 (2026 is not a
		// leap year), so "FEB".."FEB" still holds on March 2 and 3.
		{"2026-03-02T12:00:00Z", `dateRange("FEB", "FEB")`, "true"},
		{"2026-03-04T12:00:00Z", `dateRange("FEB", "FEB")`, "false"},
		// November 30 23:30 UTC is December 1 00:30 in UTC+1.
		{"2026-11-30T23:30:00Z", `dateRange(30)`, "false"},
		{"2026-11-30T23:30:00Z", `dateRange(30, "GMT")`, "true"},
		{"2026-11-30T23:30:00Z", `dateRange("NOV", "GMT")`, "true"},
		{"2026-11-30T23:30:00Z", `dateRange("DEC")`, "true"},

		{mon, `timeRange(11)`, "true"},
		{mon, `timeRange(10)`, "false"},
		{mon, `timeRange(10, "GMT")`, "true"},
		{mon, `timeRange("11")`, "true"}, // loose ==
		{mon, `timeRange(null)`, "false"},
		{mon, `timeRange(9, 17)`, "true"},
		{mon, `timeRange(12, 17)`, "false"},
		{mon, `timeRange(22, 2)`, "false"}, // the two-hour form does not wrap
		{mon, `timeRange(11, 30, 11, 30)`, "true"},
		{mon, `timeRange(11, 31, 12, 0)`, "false"},
		{mon, `timeRange(11, 0, 11, 29)`, "false"},
		{mon, `timeRange(11, 30, 15, 11, 30, 15)`, "true"},
		{mon, `timeRange(11, 30, 16, 12, 0, 0)`, "false"},
		{mon, `timeRange(22, 0, 12, 0)`, "true"}, // minute forms wrap
		{mon, `timeRange(10, 0, 10, 59, "GMT")`, "true"},
		{mon, `timeRange(11, 0, 11, 59, "GMT")`, "false"},
		{mon, `timeRange("a", 0, 12, 0)`, "true"},  // start invalid (NaN): the wrapped test now <= end holds
		{mon, `timeRange(12, 0, "a", 0)`, "false"}, // end invalid: only now >= start can hold, and does not
		{mon, `timeRange()`, "false"},
		{mon, `timeRange(1, 2, 3)`, "throws"},
		{mon, `timeRange(1, 2, 3, 4, 5)`, "throws"},
		{mon, `timeRange(1, 2, 3, 4, 5, 6, 7)`, "throws"},
	}
	for _, tc := range tests {
		t.Run(tc.now+" "+tc.expr, func(t *testing.T) {
			now, err := time.Parse(time.RFC3339Nano, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			opts := testOptions()
			opts.Now = func() time.Time { return now }
			opts.Location = cet
			got, err := evalExpr(t, opts, tc.expr)
			if tc.want == "throws" {
				if err == nil || !strings.Contains(err.Error(), errTimeRangeArgs) {
					t.Fatalf("%s = %q, %v; want it to throw %q", tc.expr, got, err, errTimeRangeArgs)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%s at %s = %q, %v; want %s", tc.expr, now.In(cet), got, err, tc.want)
			}
		})
	}
}

// TestScriptDateFollowsClock checks that JavaScript's own Date sees the
// injected clock, as the date functions do.
func TestScriptDateFollowsClock(t *testing.T) {
	got, err := evalExpr(t, testOptions(), `new Date().toISOString()`)
	if want := testNow.Format("2006-01-02T15:04:05.000Z"); err != nil || got != want {
		t.Fatalf("new Date() = %q, %v; want %q", got, err, want)
	}
}

func TestJSParseInt(t *testing.T) {
	s := mustScript(t, "function FindProxyForURL(){return ''}", testOptions())
	v := <-s.idle
	defer s.release(v)
	for in, want := range map[string]string{"2009": "2009", "2009x": "2009", " 12": "12", "0x10": "16",
		"-3": "-3", "": "NaN", "x": "NaN", "3.7": "3", "1e3": "1"} {
		if got := fmt.Sprint(jsParseInt(v.rt.ToValue(in))); got != want {
			t.Errorf("parseInt(%q) = %s, want %s", in, got, want)
		}
	}
}
