package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// at is a fixed date: day d of March 2026, at hour h (UTC).
func at(d, h int) time.Time { return time.Date(2026, 3, d, h, 0, 0, 0, time.UTC) }

// rec is a record whose CertPEM is a stand-in naming it, so that a bundle's
// content reads as the list of its CAs.
func rec(id string, created, active, retired, remove time.Time) Record {
	return Record{ID: id, CertPEM: []byte("<" + id + ">"), CreatedAt: created, ActiveAt: active, RetiredAt: retired, RemoveAt: remove}
}

var zero time.Time

// rotated is a tenant whose first CA "a" (1 March) was rotated on 10 March
// at noon to "b" by the default schedule: b is published at once and signs
// from 11 March noon; a signs until then and stays published 30 days more,
// until 10 April noon.
var rotated = []Record{
	rec("b", at(10, 12), at(11, 12), zero, zero),
	rec("a", at(1, 0), at(1, 0), at(11, 12), at(11, 12).Add(DefaultOverlap)),
}

func TestSigning(t *testing.T) {
	for _, c := range []struct {
		name string
		cas  []Record
		now  time.Time
		want string // "" for none
	}{
		{"no CA", nil, at(1, 0), ""},
		{"before the first CA is active", []Record{rec("a", at(1, 0), at(2, 0), zero, zero)}, at(1, 23), ""},
		{"first CA from ActiveAt on", []Record{rec("a", at(1, 0), at(2, 0), zero, zero)}, at(2, 0), "a"},
		{"during the publish lead the old CA signs", rotated, at(10, 12), "a"},
		{"an hour before the switch", rotated, at(11, 11), "a"},
		{"at the switch the new CA signs", rotated, at(11, 12), "b"},
		{"during the overlap the new CA signs", rotated, at(20, 0), "b"},
		{"after the overlap", rotated, at(11, 12).Add(DefaultOverlap + time.Hour), "b"},
		{"all retired", []Record{rec("a", at(1, 0), at(1, 0), at(5, 0), at(9, 0))}, at(6, 0), ""},
		{"newest active wins though neither is retired", []Record{
			rec("old", at(1, 0), at(1, 0), zero, zero),
			rec("new", at(2, 0), at(3, 0), zero, zero),
		}, at(4, 0), "new"},
		{"same ActiveAt: later CreatedAt wins", []Record{
			rec("x", at(2, 0), at(3, 0), zero, zero),
			rec("y", at(1, 0), at(3, 0), zero, zero),
		}, at(4, 0), "x"},
		{"same dates: greater ID wins, whatever the order", []Record{
			rec("q", at(1, 0), at(3, 0), zero, zero),
			rec("p", at(1, 0), at(3, 0), zero, zero),
		}, at(4, 0), "q"},
		{"removed but never retired", []Record{rec("a", at(1, 0), at(1, 0), zero, at(2, 0))}, at(3, 0), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, cas := range [][]Record{c.cas, reversed(c.cas)} {
				got, ok := Signing(cas, c.now)
				if c.want == "" {
					if ok {
						t.Errorf("Signing = %s, want none", got.ID)
					}
					continue
				}
				if !ok || got.ID != c.want {
					t.Errorf("Signing = %q, %v; want %q", got.ID, ok, c.want)
				}
			}
		})
	}
}

func reversed(cas []Record) []Record {
	r := slices.Clone(cas)
	slices.Reverse(r)
	return r
}

func TestBundle(t *testing.T) {
	for _, c := range []struct {
		name string
		cas  []Record
		now  time.Time
		want string // the stand-ins, one a line
	}{
		{"no CA", nil, at(1, 0), ""},
		{"one CA", rotated[1:], at(5, 0), "<a>"},
		{"a CA created later is not published yet", rotated, at(10, 11), "<a>"},
		{"the new CA is published from its creation", rotated, at(10, 12), "<a>\n<b>"},
		{"both during the overlap", rotated, at(30, 0), "<a>\n<b>"},
		{"both until RemoveAt", rotated, at(11, 12).Add(DefaultOverlap - time.Second), "<a>\n<b>"},
		{"the old CA leaves at RemoveAt", rotated, at(11, 12).Add(DefaultOverlap), "<b>"},
		{"retired CAs stay until RemoveAt", []Record{rec("a", at(1, 0), at(1, 0), at(2, 0), at(9, 0))}, at(8, 0), "<a>"},
		{"surrounding space is trimmed and a newline added", []Record{
			{ID: "s", CertPEM: []byte("\n  <s>  \n\n"), CreatedAt: at(1, 0), ActiveAt: at(1, 0)},
			{ID: "e", CertPEM: nil, CreatedAt: at(1, 0), ActiveAt: at(2, 0)},
		}, at(3, 0), "<s>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want != "" {
				want += "\n"
			}
			for _, cas := range [][]Record{c.cas, reversed(c.cas)} {
				got := Bundle(cas, c.now)
				if string(got) != want {
					t.Errorf("Bundle =\n%s\nwant\n%s", got, want)
				}
				if want == "" && got != nil {
					t.Errorf("Bundle = %q, want nil", got)
				}
			}
		})
	}
}

// TestBundleOfRealCAs checks that a bundle of real CAs is what agents and
// x509 read: every certificate, in PEM.
func TestBundleOfRealCAs(t *testing.T) {
	_, pemA := newCA(t, "acme", at(1, 0))
	_, pemB := newCA(t, "acme", at(10, 12))
	cas := slices.Clone(rotated)
	cas[0].CertPEM, cas[1].CertPEM = pemB, pemA
	b := Bundle(cas, at(20, 0))
	if !bytes.Equal(b, append(slices.Clone(pemA), pemB...)) {
		t.Errorf("bundle is not the two PEM certificates, old first:\n%s", b)
	}
	n := 0
	for rest := b; ; n++ {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			t.Errorf("certificate %d of the bundle: %v", n, err)
		}
	}
	if n != 2 {
		t.Errorf("bundle holds %d certificates, want 2", n)
	}
}

func TestRotate(t *testing.T) {
	now := at(10, 12)
	show := func(r Record) string {
		f := func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.Format("01-02T15")
		}
		return fmt.Sprintf("%s created %s active %s retired %s remove %s", r.ID, f(r.CreatedAt), f(r.ActiveAt), f(r.RetiredAt), f(r.RemoveAt))
	}
	for _, c := range []struct {
		name        string
		s           Schedule
		cas         []Record
		wantNext    string
		wantChanged []string
	}{
		{
			name:     "first CA, default schedule",
			s:        DefaultSchedule,
			wantNext: "n created 03-10T12 active 03-11T12 retired - remove -",
		},
		{
			name:     "first CA with no agent yet: zero schedule",
			wantNext: "n created 03-10T12 active 03-10T12 retired - remove -",
		},
		{
			name:     "routine rotation",
			s:        DefaultSchedule,
			cas:      []Record{rec("a", at(1, 0), at(1, 0), zero, zero)},
			wantNext: "n created 03-10T12 active 03-11T12 retired - remove -",
			// a signs until n does, and stays published 30 days more
			wantChanged: []string{"a created 03-01T00 active 03-01T00 retired 03-11T12 remove 04-10T12"},
		},
		{
			name: "rotating again during a publish lead retires the pending CA too",
			s:    DefaultSchedule,
			cas: []Record{
				rec("a", at(1, 0), at(1, 0), at(10, 18), at(10, 18).Add(DefaultOverlap)),
				rec("b", at(9, 18), at(10, 18), zero, zero), // pending: signs from 18:00 today
			},
			wantNext: "n created 03-10T12 active 03-11T12 retired - remove -",
			wantChanged: []string{
				"b created 03-09T18 active 03-10T18 retired 03-11T12 remove 04-10T12",
			},
		},
		{
			name: "leaked key: switch and unpublish at once",
			s:    Schedule{},
			cas: []Record{
				rec("a", at(1, 0), at(1, 0), zero, zero),
				rec("old", at(1, 0), at(1, 0), at(2, 0), at(4, 0)), // retired and removed long ago: untouched
			},
			wantNext:    "n created 03-10T12 active 03-10T12 retired - remove -",
			wantChanged: []string{"a created 03-01T00 active 03-01T00 retired 03-10T12 remove 03-10T12"},
		},
		{
			name:        "negative durations count as zero",
			s:           Schedule{PublishLead: -time.Hour, Overlap: -time.Hour},
			cas:         []Record{rec("a", at(1, 0), at(1, 0), zero, zero)},
			wantNext:    "n created 03-10T12 active 03-10T12 retired - remove -",
			wantChanged: []string{"a created 03-01T00 active 03-01T00 retired 03-10T12 remove 03-10T12"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := slices.Clone(c.cas)
			next, changed := c.s.Rotate(c.cas, Record{ID: "n", CertPEM: []byte("<n>"), RetiredAt: at(1, 0)}, now)
			if got := show(next); got != c.wantNext {
				t.Errorf("next:\n got %s\nwant %s", got, c.wantNext)
			}
			var got []string
			for _, r := range changed {
				got = append(got, show(r))
			}
			if strings.Join(got, "\n") != strings.Join(c.wantChanged, "\n") {
				t.Errorf("changed:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(c.wantChanged, "\n     "))
			}
			if !slices.EqualFunc(in, c.cas, func(a, b Record) bool { return show(a) == show(b) }) {
				t.Error("Rotate modified its input")
			}
		})
	}
}

// TestRotationTimeline walks a default rotation hour by hour and checks the
// rule the platform relies on: whichever CA signs is in the bundle, and has
// been for PublishLead, and a CA that stopped signing stays published
// longer than any leaf it signed lives.
func TestRotationTimeline(t *testing.T) {
	cas := []Record{rec("a", at(1, 0), at(1, 0), zero, zero)}
	next, changed := DefaultSchedule.Rotate(cas, Record{ID: "b", CertPEM: []byte("<b>")}, at(10, 12))
	cas = append(changed, next)
	lastSigned := map[string]time.Time{}
	for now := at(1, 0); now.Before(at(1, 0).AddDate(0, 2, 0)); now = now.Add(time.Hour) {
		s, ok := Signing(cas, now)
		if !ok {
			t.Fatalf("%v: no CA signs", now)
		}
		lastSigned[s.ID] = now
		if !strings.Contains(string(Bundle(cas, now)), "<"+s.ID+">") {
			t.Fatalf("%v: %s signs but is not in the bundle", now, s.ID)
		}
		if since := now.Sub(s.CreatedAt); s.ID == "b" && since < DefaultPublishLead {
			t.Fatalf("%v: b signs %v after being published, want at least %v", now, since, DefaultPublishLead)
		}
		for id, last := range lastSigned {
			if now.Sub(last) <= DefaultLeafLifetime+RenewBefore && !strings.Contains(string(Bundle(cas, now)), "<"+id+">") {
				t.Fatalf("%v: %s left the bundle while a leaf it signed at %v may still be in use", now, id, last)
			}
		}
	}
	if _, ok := lastSigned["b"]; !ok {
		t.Fatal("b never signed")
	}
	if got := string(Bundle(cas, at(1, 0).AddDate(0, 2, 0))); got != "<b>\n" {
		t.Errorf("bundle after the overlap: %q, want b alone", got)
	}
}

func TestNextChange(t *testing.T) {
	for _, c := range []struct {
		name string
		cas  []Record
		now  time.Time
		want time.Time // zero for none
	}{
		{"no CA", nil, at(1, 0), zero},
		{"one CA, nothing scheduled", []Record{rec("a", at(1, 0), at(1, 0), zero, zero)}, at(2, 0), zero},
		{"first CA pending", []Record{rec("a", at(1, 0), at(2, 0), zero, zero)}, at(1, 0), at(2, 0)},
		{"rotation decided: the switch", rotated, at(10, 12), at(11, 12)},
		{"at the switch: the removal", rotated, at(11, 12), at(11, 12).Add(DefaultOverlap)},
		{"after the removal", rotated, at(11, 12).Add(DefaultOverlap), zero},
		{"a CA created in the future", []Record{rec("a", at(5, 0), at(6, 0), zero, zero)}, at(1, 0), at(5, 0)},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := NextChange(c.cas, c.now)
			if ok != !c.want.IsZero() || !got.Equal(c.want) {
				t.Errorf("NextChange = %v, %v; want %v", got, ok, c.want)
			}
		})
	}
	// Between two changes, Signing and Bundle do not change.
	for now := at(1, 0); ; {
		next, ok := NextChange(rotated, now)
		if !ok {
			break
		}
		s0, _ := Signing(rotated, now)
		b0 := Bundle(rotated, now)
		for t1 := now; t1.Before(next); t1 = t1.Add(time.Hour) {
			s1, _ := Signing(rotated, t1)
			if s1.ID != s0.ID || !bytes.Equal(Bundle(rotated, t1), b0) {
				t.Fatalf("change at %v, before NextChange(%v) = %v", t1, now, next)
			}
		}
		now = next
	}
}
