package certs

import (
	"bytes"
	"slices"
	"strings"
	"time"
)

// Record is what rotation needs to know of one of a tenant's CAs: the
// platform copies its stored CAs into Records, so that this package does not
// depend on the store. A zero time means "not set".
type Record struct {
	ID        string
	CertPEM   []byte
	CreatedAt time.Time // in the bundle from here
	ActiveAt  time.Time // signs leaves from here
	RetiredAt time.Time // zero while it may sign; signs no leaf from here
	RemoveAt  time.Time // zero until retired; out of the bundle from here
}

// signs reports whether r may sign leaves at now.
func (r Record) signs(now time.Time) bool {
	return !now.Before(r.ActiveAt) &&
		(r.RetiredAt.IsZero() || now.Before(r.RetiredAt)) &&
		!r.removed(now)
}

// published reports whether r belongs in the bundle at now.
func (r Record) published(now time.Time) bool {
	return !now.Before(r.CreatedAt) && !r.removed(now)
}

func (r Record) removed(now time.Time) bool {
	return !r.RemoveAt.IsZero() && !now.Before(r.RemoveAt)
}

// newer orders records by ActiveAt, then CreatedAt, then ID, so that every
// gateway node picks the same signer from the same records.
func newer(a, b Record) bool {
	if !a.ActiveAt.Equal(b.ActiveAt) {
		return a.ActiveAt.After(b.ActiveAt)
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}

// Signing returns the CA that signs leaves at now: among the CAs active at
// now (ActiveAt ≤ now) and not retired (RetiredAt zero or after now), the
// one that became active last. It returns false when there is none, for
// example before a tenant's first CA becomes active: the gateway then cannot
// inspect, and its policy says whether it tunnels or refuses.
func Signing(cas []Record, now time.Time) (Record, bool) {
	var best Record
	found := false
	for _, r := range cas {
		if r.signs(now) && (!found || newer(r, best)) {
			best, found = r, true
		}
	}
	return best, found
}

// Bundle returns the PEM certificates of every CA published at now
// (CreatedAt ≤ now, and RemoveAt zero or after now), oldest ActiveAt first,
// each ending in a newline. During an overlap it holds the old CA and the
// new one, so agents trust both. The order does not depend on the order of
// cas, so the bundle's bytes (and its ETag) change only when the set does.
// It returns nil when no CA is published.
func Bundle(cas []Record, now time.Time) []byte {
	var pub []Record
	for _, r := range cas {
		if r.published(now) {
			pub = append(pub, r)
		}
	}
	slices.SortFunc(pub, func(a, b Record) int {
		switch {
		case newer(b, a):
			return -1
		case newer(a, b):
			return 1
		}
		return 0
	})
	var buf bytes.Buffer
	for _, r := range pub {
		p := bytes.TrimSpace(r.CertPEM)
		if len(p) == 0 {
			continue
		}
		buf.Write(p)
		buf.WriteByte('\n')
	}
	if buf.Len() == 0 {
		return nil
	}
	return buf.Bytes()
}

// NextChange returns the first instant after now at which [Signing] or
// [Bundle] may answer differently for cas, and false if none is scheduled.
// A rotation is decided once but takes effect a day later, so the gateway
// and the bundle server cannot wait for the CA records to change: they
// re-evaluate at this time (a timer), as well as when the records change.
func NextChange(cas []Record, now time.Time) (time.Time, bool) {
	var next time.Time
	for _, r := range cas {
		for _, t := range []time.Time{r.CreatedAt, r.ActiveAt, r.RetiredAt, r.RemoveAt} {
			if t.After(now) && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
	}
	return next, !next.IsZero()
}

const (
	// DefaultPublishLead is how long a new CA is in the bundle before it
	// signs: 24 hours, far more than the agents' 30-minute configuration
	// poll, so that a workstation that was asleep or offline for most of
	// a day has installed the new CA before a browser on it sees a leaf
	// the new CA signed.
	DefaultPublishLead = 24 * time.Hour

	// DefaultOverlap is how long an old CA stays in the bundle after it
	// stops signing: 30 days. It must exceed the leaf lifetime (7 days by
	// default) so that no leaf outlives its CA in the trust stores; the
	// rest is a window in which the platform can switch back to the old CA
	// if the new one turns out wrong, and every agent still trusts it.
	DefaultOverlap = 30 * 24 * time.Hour
)

// Schedule is the overlap rule of a CA rotation: a new CA is published
// (in the [Bundle]) at least PublishLead before it signs, and an old CA
// stays published Overlap after it stops signing. Negative durations count
// as zero.
//
// A zero Schedule switches at once and unpublishes the old CA at once: it is
// for a tenant's first CA when no agent is enrolled yet, and for a CA whose
// key leaked, where trusting it one day more is worse than browsers showing
// errors until their agent polls.
type Schedule struct {
	PublishLead time.Duration
	Overlap     time.Duration
}

// DefaultSchedule is the rule for routine rotations.
var DefaultSchedule = Schedule{PublishLead: DefaultPublishLead, Overlap: DefaultOverlap}

// Rotate dates the next CA of a tenant whose CAs are cas, at now: next gets
// CreatedAt now and ActiveAt now+PublishLead. Every CA of cas that is not
// retired yet is retired when next becomes active and removed Overlap later;
// Rotate returns those, changed, for the caller to store (it stores only
// their RetiredAt and RemoveAt). CAs already retired keep their dates.
//
// Rotating again before a pending CA becomes active retires that one too:
// the newest rotation wins, and the pending CA, already published, stays
// published for Overlap like any other.
func (s Schedule) Rotate(cas []Record, next Record, now time.Time) (Record, []Record) {
	lead, overlap := max(s.PublishLead, 0), max(s.Overlap, 0)
	next.CreatedAt = now
	next.ActiveAt = now.Add(lead)
	next.RetiredAt, next.RemoveAt = time.Time{}, time.Time{}
	var changed []Record
	for _, r := range cas {
		if !r.RetiredAt.IsZero() || r.ID == next.ID {
			continue
		}
		r.RetiredAt = next.ActiveAt
		r.RemoveAt = next.ActiveAt.Add(overlap)
		changed = append(changed, r)
	}
	slices.SortFunc(changed, func(a, b Record) int { return strings.Compare(a.ID, b.ID) })
	return next, changed
}
