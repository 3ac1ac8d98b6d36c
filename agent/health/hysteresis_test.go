package health

import "testing"

// TestStep feeds sequences of probe results to the hysteresis step. In
// results '+' is a successful probe and '-' a failed one; want is the
// verdict after each of them, 'U' up and 'D' down.
func TestStep(t *testing.T) {
	fresh := verdict{up: true}                 // after New: assumed up, not probed
	upNow := verdict{up: true, probed: true}   // running, up
	downNow := verdict{probed: true, fails: 3} // running, down
	tests := []struct {
		name          string
		from          verdict
		down, upAfter int
		results, want string
	}{
		{"first failure decides", fresh, 3, 2, "-", "D"},
		{"first success decides", fresh, 3, 2, "+", "U"},
		{"first failure then one success", fresh, 3, 2, "-+", "DD"},
		{"first failure then two successes", fresh, 3, 2, "-++", "DDU"},
		{"first success then failures", fresh, 3, 2, "+---", "UUUD"},
		{"down after three", upNow, 3, 2, "---", "UUD"},
		{"a success resets the failures", upNow, 3, 2, "--+--+--", "UUUUUUUU"},
		{"stays down while failing", downNow, 3, 2, "----", "DDDD"},
		{"up after two", downNow, 3, 2, "++", "DU"},
		{"a failure resets the successes", downNow, 3, 2, "+-+-+-", "DDDDDD"},
		{"flap", upNow, 3, 2, "---++---", "UUDDUUUD"},
		{"thresholds of one", upNow, 1, 1, "-+-+", "DUDU"},
		{"thresholds of five", upNow, 5, 4, "-----++++", "UUUUDDDDU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.from
			got := make([]byte, len(tt.results))
			for i, r := range []byte(tt.results) {
				prev := v
				v = step(v, r == '+', tt.down, tt.upAfter)
				got[i] = 'D'
				if v.up {
					got[i] = 'U'
				}
				if !v.probed {
					t.Fatalf("step %d: not marked probed", i)
				}
				// The counts are the run of equal results ending here.
				if r == '+' && (v.oks != prev.oks+1 || v.fails != 0) ||
					r == '-' && (v.fails != prev.fails+1 || v.oks != 0) {
					t.Fatalf("step %d (%c): counts %d ok, %d failed after %d, %d", i, r, v.oks, v.fails, prev.oks, prev.fails)
				}
			}
			if string(got) != tt.want {
				t.Errorf("%s → %s, want %s", tt.results, got, tt.want)
			}
		})
	}
}
