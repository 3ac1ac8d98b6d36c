package health

// verdict is the debounced state of the gateway probes, and all that the
// hysteresis step needs to compute the next one.
type verdict struct {
	up     bool // the debounced answer: is the gateway up?
	probed bool // a result has counted since start or since the target changed
	fails  int  // consecutive failed probes; a success resets it
	oks    int  // consecutive successful probes; a failure resets it
}

// step is the hysteresis: it returns v after one more probe result. The
// first result (v.probed false) decides at once, so that the agent does
// not spend its first DownAfter intervals in the wrong state. After that
// the gateway goes down after downAfter consecutive failures and comes back
// up after upAfter consecutive successes; a single result against the
// current verdict only counts towards a change.
func step(v verdict, ok bool, downAfter, upAfter int) verdict {
	if ok {
		v.oks++
		v.fails = 0
	} else {
		v.fails++
		v.oks = 0
	}
	switch {
	case !v.probed:
		v.up = ok
	case v.up && v.fails >= downAfter:
		v.up = false
	case !v.up && v.oks >= upAfter:
		v.up = true
	}
	v.probed = true
	return v
}
