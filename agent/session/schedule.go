package session

import "time"

// The refresh schedule, as pure functions of the tokens' times: table-tested
// with fixed dates, and run by Run.

// nextRefresh is when to refresh an access token issued at issued that
// expires at expires: at 2/3 of its lifetime, moved by up to ±10% of the
// lifetime by jitter ∈ [0, 1) (0.5 is exactly 2/3), so that machines that
// signed in together do not all refresh together. For a 15-minute token:
// between 8m30s and 11m30s after issue, which leaves at least 3m30s for
// retries before it expires.
func nextRefresh(issued, expires time.Time, jitter float64) time.Time {
	life := expires.Sub(issued)
	if life <= 0 {
		return issued
	}
	frac := 2.0/3 + (clamp01(jitter)-0.5)*0.2
	return issued.Add(time.Duration(float64(life) * frac).Round(time.Millisecond))
}

// refreshAt is the first refresh attempt for t: nextRefresh, unless the
// login session ends before a refresh could extend the access token by
// minGain (the platform never lets an access token outlive its session):
// then there is nothing left to refresh, and the time returned is the
// session's end, when the user must sign in again.
func refreshAt(t *tokens, jitter float64) time.Time {
	if t.sessionExp.Sub(t.accessExp) < minGain {
		return t.sessionExp
	}
	return nextRefresh(t.issued, t.accessExp, jitter)
}

// backoff is the wait after the n-th refresh failure in a row (n ≥ 1):
// 5 s, doubling, at most 5 min, and ±20% by jitter.
func backoff(n int, jitter float64) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*clamp01(jitter))).Round(time.Millisecond)
}

// minRetry is the shortest wait between two refresh attempts.
const minRetry = 2 * time.Second

// retryAt is when to try again after the n-th failure in a row at now:
// after backoff; but while the access token is still usable, no later than
// halfway to its last usable moment (expiry minus TokenMargin), so that a
// short outage is not outlasted by the wait itself; never sooner than
// minRetry or the platform's Retry-After (itself capped at maxBackoff); and
// never after the session's end.
func retryAt(now time.Time, t *tokens, n int, jitter float64, retryAfter time.Duration) time.Time {
	next := now.Add(backoff(n, jitter))
	if deadline := t.accessExp.Add(-TokenMargin); now.Before(deadline) {
		if half := now.Add(deadline.Sub(now) / 2); half.Before(next) {
			next = half
		}
	}
	if floor := now.Add(max(minRetry, min(retryAfter, maxBackoff))); next.Before(floor) {
		next = floor
	}
	if next.After(t.sessionExp) {
		next = t.sessionExp
	}
	return next
}

func clamp01(f float64) float64 {
	switch {
	case f != f || f < 0: // NaN too
		return 0
	case f >= 1:
		return 1
	}
	return f
}
