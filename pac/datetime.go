package pac

import (
	"math"
	"strings"
	"time"

	"github.com/dop251/goja"
)

// The date and time functions follow the algorithms of the JavaScript
// library Chromium (and Firefox) evaluate PAC files with, step for step,
// including its quirks: ranges that wrap around the end of the week or year,
// JavaScript Date setters that roll over (setting February on December 31
// lands in March), and the way "GMT" is applied by shifting the clock rather
// than the bounds. Only the names below are recognised, in upper case.

var weekdays = map[string]int{"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}

var months = map[string]int{"JAN": 0, "FEB": 1, "MAR": 2, "APR": 3, "MAY": 4, "JUN": 5,
	"JUL": 6, "AUG": 7, "SEP": 8, "OCT": 9, "NOV": 10, "DEC": 11}

// inheritedNames are the properties every JavaScript object inherits. The
// browser looks names up with the `in` operator, so these are "found" and
// yield a function, which compares as NaN: the result is false.
var inheritedNames = map[string]bool{"constructor": true, "hasOwnProperty": true, "isPrototypeOf": true,
	"propertyIsEnumerable": true, "toLocaleString": true, "toString": true, "valueOf": true,
	"__proto__": true, "__defineGetter__": true, "__defineSetter__": true, "__lookupGetter__": true,
	"__lookupSetter__": true}

// lookupName returns the index of name in table, -1 when absent, and NaN
// for inherited names.
func lookupName(table map[string]int, v goja.Value) float64 {
	s := v.String()
	if i, ok := table[s]; ok {
		return float64(i)
	}
	if inheritedNames[s] {
		return math.NaN()
	}
	return -1
}

func isGMT(v goja.Value) bool { return goja.IsString(v) && v.String() == "GMT" }

// jsDate is a JavaScript Date: a time value in milliseconds (NaN when
// invalid) read and set through local fields in loc.
type jsDate struct {
	ms  float64
	loc *time.Location
}

func newJSDate(t time.Time, loc *time.Location) jsDate {
	return jsDate{ms: float64(t.UnixMilli()), loc: loc}
}

func (d jsDate) valid() bool { return !math.IsNaN(d.ms) }

func (d jsDate) time(loc *time.Location) time.Time {
	return time.UnixMilli(int64(d.ms)).In(loc)
}

// Field indexes for set.
const (
	fYear = iota
	fMonth
	fDay
	fHour
	fMinute
	fSecond
)

// set changes one local field, as Date.prototype.setFullYear, setMonth,
// setDate, setHours, setMinutes and setSeconds do: other fields keep their
// values and overflow rolls into the larger units. A NaN or infinite value
// makes the date invalid; setting the year of an invalid date starts over
// from January 1 of that year, as ECMAScript's setFullYear does.
func (d *jsDate) set(field int, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e9 {
		d.ms = math.NaN()
		return
	}
	var t time.Time
	switch {
	case d.valid():
		t = d.time(d.loc)
	case field == fYear:
		t = time.Date(1970, time.January, 1, 0, 0, 0, 0, d.loc)
	default:
		return
	}
	f := [6]int{t.Year(), int(t.Month()) - 1, t.Day(), t.Hour(), t.Minute(), t.Second()}
	f[field] = int(v) // ToIntegerOrInfinity truncates toward zero
	t = time.Date(f[fYear], time.Month(f[fMonth]+1), f[fDay], f[fHour], f[fMinute], f[fSecond],
		t.Nanosecond(), d.loc)
	d.ms = float64(t.UnixMilli())
}

// shiftToGMT is the library's way of applying "GMT": it copies the UTC
// fields into the local fields one setter at a time, each getter reading the
// value the previous setter left.
func (d *jsDate) shiftToGMT() {
	for field := fYear; field <= fSecond; field++ {
		if !d.valid() {
			return
		}
		u := d.time(time.UTC)
		v := [6]int{u.Year(), int(u.Month()) - 1, u.Day(), u.Hour(), u.Minute(), u.Second()}[field]
		d.set(field, float64(v))
	}
}

// inRange compares as the library does: inclusive, wrapping when the start
// is after the end. Invalid dates are NaN, and every comparison with NaN is
// false, in Go as in JavaScript: an invalid start can still leave the
// wrapped test "now <= end" true.
func inRange(d1, now, d2 jsDate) bool {
	if d1.ms <= d2.ms {
		return d1.ms <= now.ms && now.ms <= d2.ms
	}
	return now.ms >= d1.ms || now.ms <= d2.ms
}

// jsParseInt is JavaScript's parseInt(String(v)).
func jsParseInt(v goja.Value) float64 {
	s := strings.TrimLeft(v.String(), " \t\n\v\f\r\u00a0\ufeff\u2028\u2029")
	sign := 1.0
	if s != "" && (s[0] == '-' || s[0] == '+') {
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
	}
	base := 10.0
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		base, s = 16, s[2:]
	}
	n, digits := 0.0, 0
	for ; digits < len(s); digits++ {
		c := s[digits]
		var dv float64
		switch {
		case '0' <= c && c <= '9':
			dv = float64(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			dv = float64(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			dv = float64(c-'A') + 10
		default:
			dv = -1
		}
		if dv < 0 {
			break
		}
		n = n*base + dv
	}
	if digits == 0 {
		return math.NaN()
	}
	return sign * n
}

// weekdayRange(wd1 [, wd2] [, "GMT"]).
func weekdayRange(now time.Time, loc *time.Location, args []goja.Value) bool {
	argc := len(args)
	if argc < 1 {
		return false
	}
	var today float64
	if isGMT(args[argc-1]) {
		argc--
		today = float64(now.UTC().Weekday())
	} else {
		today = float64(now.In(loc).Weekday())
	}
	if argc < 1 {
		return false // weekdayRange("GMT"): no day named, wd1 is undefined (-1)
	}
	wd1 := lookupName(weekdays, args[0])
	wd2 := wd1
	if argc == 2 {
		wd2 = lookupName(weekdays, args[1])
	}
	if wd1 == -1 || wd2 == -1 {
		return false
	}
	if wd1 <= wd2 {
		return wd1 <= today && today <= wd2
	}
	return wd2 >= today || today >= wd1
}

// dateRange(...): day, month, year in the forms of the Netscape spec.
func dateRange(now time.Time, loc *time.Location, args []goja.Value) bool {
	argc := len(args)
	if argc < 1 {
		return false
	}
	gmt := isGMT(args[argc-1])
	if gmt {
		argc--
	}
	local := now.In(loc)
	fields := local
	if gmt {
		fields = now.UTC()
	}
	if argc == 1 {
		t := jsParseInt(args[0])
		switch {
		case math.IsNaN(t):
			return float64(int(fields.Month())-1) == lookupName(months, args[0])
		case t < 32:
			return float64(fields.Day()) == t
		default:
			return float64(fields.Year()) == t
		}
	}
	year := local.Year()
	d1 := jsDate{ms: float64(time.Date(year, time.January, 1, 0, 0, 0, 0, loc).UnixMilli()), loc: loc}
	d2 := jsDate{ms: float64(time.Date(year, time.December, 31, 23, 59, 59, 0, loc).UnixMilli()), loc: loc}
	adjustMonth := false
	half := argc >> 1
	for i := 0; i < argc; i++ {
		d := &d1
		if i >= half {
			d = &d2
		}
		t := jsParseInt(args[i])
		switch {
		case math.IsNaN(t):
			d.set(fMonth, lookupName(months, args[i]))
		case t < 32:
			if i < half {
				adjustMonth = argc <= 2
			}
			d.set(fDay, t)
		default:
			d.set(fYear, t)
		}
	}
	if adjustMonth {
		d1.set(fMonth, float64(local.Month()-1))
		d2.set(fMonth, float64(local.Month()-1))
	}
	cur := newJSDate(now, loc)
	if gmt {
		cur.shiftToGMT()
	}
	return inRange(d1, cur, d2)
}

// errTimeRangeArgs is what timeRange throws for a bad argument count: the
// browser throws this string itself, not an Error object.
const errTimeRangeArgs = "timeRange: bad number of arguments"

// timeRange(...): hours, minutes, seconds in the forms of the Netscape spec.
// ok is false when the argument count is invalid (the caller throws).
func timeRange(now time.Time, loc *time.Location, args []goja.Value) (in, ok bool) {
	argc := len(args)
	if argc < 1 {
		return false, true
	}
	gmt := isGMT(args[argc-1])
	if gmt {
		argc--
	}
	hour := float64(now.In(loc).Hour())
	if gmt {
		hour = float64(now.UTC().Hour())
	}
	num := func(i int) float64 { return args[i].ToFloat() }
	switch argc {
	case 1:
		if goja.IsNull(args[0]) || goja.IsUndefined(args[0]) {
			return false, true // == never equates a number with null or undefined
		}
		return hour == num(0), true
	case 2:
		return num(0) <= hour && hour <= num(1), true
	case 4, 6:
	default:
		return false, false
	}
	d1, d2 := newJSDate(now, loc), newJSDate(now, loc)
	mid := argc >> 1
	if argc == 6 {
		d1.set(fSecond, num(2))
		d2.set(fSecond, num(5))
	}
	d1.set(fHour, num(0))
	d1.set(fMinute, num(1))
	d2.set(fHour, num(mid))
	d2.set(fMinute, num(mid+1))
	if mid == 2 {
		d2.set(fSecond, 59)
	}
	cur := newJSDate(now, loc)
	if gmt {
		cur.shiftToGMT()
	}
	return inRange(d1, cur, d2), true
}
