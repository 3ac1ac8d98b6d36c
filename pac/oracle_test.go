package pac

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the machine has
)

// TestDateFunctionsMatchJavaScript compares the Go date and time functions
// with the browsers' algorithm written in JavaScript (testdata/
// naive_helpers.js, run by goja's own Date) for random arguments and clocks.
// JavaScript's Date uses the process's zone, so each zone runs in a child
// process with TZ set.
func TestDateFunctionsMatchJavaScript(t *testing.T) {
	if os.Getenv("PAC_ORACLE_CHILD") == "" {
		for _, tz := range []string{"UTC", "Asia/Kolkata", "America/New_York", "Pacific/Chatham"} {
			cmd := exec.Command(os.Args[0], "-test.run=^TestDateFunctionsMatchJavaScript$")
			cmd.Env = append(os.Environ(), "TZ="+tz, "PAC_ORACLE_CHILD=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("TZ=%s: %v\n%s", tz, err, out)
			}
		}
		return
	}

	var now time.Time
	clock := func() time.Time { return now }
	naive, err := newNaiveEngine(`function FindProxyForURL(url, expr) { try { return String(eval(expr)) } catch (e) { return "throws " + e } }`, StaticResolver{}, mustAddr("10.0.0.1"), clock)
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.Now, opts.Location, opts.CacheTTL = clock, time.Local, -1
	ours := mustScript(t, `function FindProxyForURL(url, expr) { try { return String(eval(expr)) } catch (e) { return "throws " + e } }`, opts)

	rng := rand.New(rand.NewPCG(1, 2))
	pools := map[string][]string{
		"weekdayRange": {`"SUN"`, `"MON"`, `"TUE"`, `"WED"`, `"THU"`, `"FRI"`, `"SAT"`, `"GMT"`, `"mon"`, `"toString"`, `1`},
		"dateRange": {`1`, `15`, `28`, `29`, `30`, `31`, `"31"`, `0`, `32`, `2025`, `2026`, `2027`, `"JAN"`, `"FEB"`, `"MAR"`,
			`"APR"`, `"JUN"`, `"SEP"`, `"NOV"`, `"DEC"`, `"GMT"`, `"x"`, `"toString"`, `-1`},
		"timeRange": {`0`, `1`, `11`, `12`, `23`, `24`, `30`, `59`, `60`, `"12"`, `"GMT"`, `null`, `"x"`, `-1`, `2.5`},
	}
	start := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC).Unix()
	failures := 0
	for i := 0; i < 10000 && failures < 10; i++ {
		now = time.Unix(start+rng.Int64N(400*86400), int64(rng.IntN(1000))*1e6)
		if rng.IntN(4) == 0 { // near a day, month or year boundary
			now = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(7200)-3600) * time.Second)
		}
		fn := []string{"weekdayRange", "dateRange", "timeRange"}[i%3]
		pool := pools[fn]
		args := make([]string, rng.IntN(8))
		for j := range args {
			args[j] = pool[rng.IntN(len(pool))]
		}
		expr := fn + "(" + strings.Join(args, ", ") + ")"
		want, err := naive.findProxy("http://x/", expr)
		if err != nil {
			t.Fatal(err)
		}
		res, err := ours.Eval(context.Background(), "http://x/", expr)
		if err != nil {
			t.Fatal(err)
		}
		if res.Raw != want {
			failures++
			t.Errorf("TZ=%s now=%s (%s local): %s = %s, JavaScript says %s", os.Getenv("TZ"),
				now.UTC().Format(time.RFC3339Nano), now.Local().Format("2006-01-02 15:04:05 Mon"), expr, res.Raw, want)
		}
	}
}
