package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"vigie/platform/store"
)

// The gateway's data: inspection CAs, policies, URL categories and the
// access log.

func lastSeq(t testing.TB, st store.Store) int64 {
	t.Helper()
	seq, err := st.LastRevocation(t.Context())
	must(t, err)
	return seq
}

// event is what a feed event must say.
type event struct{ tenant, kind, subject string }

// wantFeed checks that the events after seq after are exactly want, in
// order, each with a time.
func wantFeed(t testing.TB, st store.Store, after int64, want ...event) []*store.Revocation {
	t.Helper()
	got := feed(t, st, after)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Tenant == want[i].tenant && got[i].Kind == want[i].kind && got[i].Subject == want[i].subject && !got[i].At.IsZero()
	}
	if !ok {
		var b bytes.Buffer
		for _, r := range got {
			fmt.Fprintf(&b, "\n\t%+v", *r)
		}
		t.Fatalf("feed after %d:%s\nwant %+v", after, b.String(), want)
	}
	return got
}

func testCAs(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	start := lastSeq(t, st)

	ca1 := &store.CA{Tenant: "acme", ID: "ca1", CertPEM: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", Key: []byte("sealed-1"),
		CreatedAt: t0, ActiveAt: t0.Add(time.Hour)}
	ca0 := &store.CA{Tenant: "acme", ID: "ca0", CertPEM: "pem-0", Key: []byte{0, 1, 2}, CreatedAt: t0.Add(time.Minute)}
	must(t, st.AddCA(ctx, ca0))
	must(t, st.AddCA(ctx, ca1))
	other := &store.CA{Tenant: "beta", ID: "ca1", CertPEM: "pem-beta"}
	must(t, st.AddCA(ctx, other))
	if other.CreatedAt.IsZero() {
		t.Error("AddCA left CreatedAt zero")
	}
	// A failed add changes nothing, and tells no one.
	is(t, st.AddCA(ctx, &store.CA{Tenant: "acme", ID: "ca1", CertPEM: "again"}), store.ErrConflict)
	is(t, st.AddCA(ctx, &store.CA{Tenant: "nope", ID: "ca1", CertPEM: "x"}), store.ErrNotFound)
	wantFeed(t, st, start,
		event{"acme", store.CAChanged, "ca0"},
		event{"acme", store.CAChanged, "ca1"},
		event{"beta", store.CAChanged, "ca1"})

	cas, err := st.CAs(ctx, "acme")
	must(t, err)
	if got := ids(cas, func(c *store.CA) string { return c.ID }); !slices.Equal(got, []string{"ca1", "ca0"}) {
		t.Fatalf("CAs = %v, want ca1 then ca0 (oldest first)", got)
	}
	c := cas[0]
	if c.Tenant != "acme" || c.CertPEM != ca1.CertPEM || !bytes.Equal(c.Key, ca1.Key) {
		t.Fatalf("CA = %+v", c)
	}
	sameTime(t, "CreatedAt", c.CreatedAt, t0)
	sameTime(t, "ActiveAt", c.ActiveAt, t0.Add(time.Hour))
	sameTime(t, "RetiredAt", c.RetiredAt, time.Time{})
	sameTime(t, "RemoveAt", c.RemoveAt, time.Time{})
	sameTime(t, "ca0 ActiveAt", cas[1].ActiveAt, time.Time{})

	start = lastSeq(t, st)
	c.RetiredAt, c.RemoveAt = t0.Add(3*time.Hour), t0.Add(27*time.Hour)
	c.CertPEM, c.Key = "ignored", []byte("ignored")
	must(t, st.UpdateCA(ctx, c))
	is(t, st.UpdateCA(ctx, &store.CA{Tenant: "acme", ID: "nope"}), store.ErrNotFound)
	is(t, st.UpdateCA(ctx, &store.CA{Tenant: "beta", ID: "ca0"}), store.ErrNotFound)
	wantFeed(t, st, start, event{"acme", store.CAChanged, "ca1"})
	cas, err = st.CAs(ctx, "acme")
	must(t, err)
	sameTime(t, "RetiredAt", cas[0].RetiredAt, t0.Add(3*time.Hour))
	sameTime(t, "RemoveAt", cas[0].RemoveAt, t0.Add(27*time.Hour))
	sameTime(t, "CreatedAt", cas[0].CreatedAt, t0)
	if cas[0].CertPEM != ca1.CertPEM || !bytes.Equal(cas[0].Key, ca1.Key) {
		t.Error("UpdateCA changed the certificate or the key")
	}

	start = lastSeq(t, st)
	must(t, st.DeleteCA(ctx, "acme", "ca1"))
	is(t, st.DeleteCA(ctx, "acme", "ca1"), store.ErrNotFound)
	wantFeed(t, st, start, event{"acme", store.CAChanged, "ca1"})
	cas, err = st.CAs(ctx, "acme")
	must(t, err)
	if len(cas) != 1 || cas[0].ID != "ca0" {
		t.Fatalf("after delete: %v", ids(cas, func(c *store.CA) string { return c.ID }))
	}
	cas, err = st.CAs(ctx, "beta")
	must(t, err)
	if len(cas) != 1 || cas[0].CertPEM != "pem-beta" {
		t.Fatalf("the other tenant's CAs: %+v", cas)
	}
}

func testPolicies(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	_, err := st.Policy(ctx, "acme")
	is(t, err, store.ErrNotFound)
	hist, err := st.PolicyHistory(ctx, "acme", 0)
	must(t, err)
	if len(hist) != 0 {
		t.Fatalf("PolicyHistory of a tenant without a policy = %d versions", len(hist))
	}
	start := lastSeq(t, st)

	// The first version is 1.
	is(t, st.PutPolicy(ctx, &store.Policy{Tenant: "acme", Version: 0}), store.ErrStale)
	is(t, st.PutPolicy(ctx, &store.Policy{Tenant: "acme", Version: 2}), store.ErrStale)
	p1 := &store.Policy{Tenant: "acme", Version: 1, Doc: json.RawMessage(`{"rules":[{"block":"gambling"}]}`), Author: "admin@acme.test", CreatedAt: t0}
	must(t, st.PutPolicy(ctx, p1))
	is(t, st.PutPolicy(ctx, &store.Policy{Tenant: "acme", Version: 1, Doc: json.RawMessage(`{}`)}), store.ErrStale)
	p2 := &store.Policy{Tenant: "acme", Version: 2, Doc: json.RawMessage(`{"rules":[]}`), Author: "scim"}
	must(t, st.PutPolicy(ctx, p2))
	if p2.CreatedAt.IsZero() {
		t.Error("PutPolicy left CreatedAt zero")
	}
	p3 := &store.Policy{Tenant: "acme", Version: 3, Doc: json.RawMessage(`{"rules": [ ] }`), Author: "admin@acme.test", CreatedAt: t0.Add(time.Hour)}
	must(t, st.PutPolicy(ctx, p3))
	is(t, st.PutPolicy(ctx, &store.Policy{Tenant: "acme", Version: 5}), store.ErrStale)
	is(t, st.PutPolicy(ctx, &store.Policy{Tenant: "nope", Version: 1}), store.ErrNotFound)
	// Another tenant's versions are its own; a nil document stays nil.
	must(t, st.PutPolicy(ctx, &store.Policy{Tenant: "beta", Version: 1}))

	events := wantFeed(t, st, start,
		event{"acme", store.PolicyChanged, "1"},
		event{"acme", store.PolicyChanged, "2"},
		event{"acme", store.PolicyChanged, "3"},
		event{"beta", store.PolicyChanged, "1"})
	sameTime(t, "event At", events[0].At, t0)

	got, err := st.Policy(ctx, "acme")
	must(t, err)
	samePolicy(t, got, p3)
	hist, err = st.PolicyHistory(ctx, "acme", 0)
	must(t, err)
	if len(hist) != 3 {
		t.Fatalf("PolicyHistory = %d versions, want 3", len(hist))
	}
	for i, want := range []*store.Policy{p3, p2, p1} {
		samePolicy(t, hist[i], want)
	}
	hist, err = st.PolicyHistory(ctx, "acme", 2)
	must(t, err)
	if len(hist) != 2 || hist[0].Version != 3 || hist[1].Version != 2 {
		t.Fatalf("PolicyHistory(limit 2) = %v", ids(hist, func(p *store.Policy) string { return strconv.FormatInt(p.Version, 10) }))
	}
	got, err = st.Policy(ctx, "beta")
	must(t, err)
	if got.Version != 1 || got.Doc != nil {
		t.Fatalf("beta's policy = %+v", got)
	}
}

func samePolicy(t testing.TB, got, want *store.Policy) {
	t.Helper()
	if got.Tenant != want.Tenant || got.Version != want.Version || !bytes.Equal(got.Doc, want.Doc) || got.Author != want.Author {
		t.Errorf("policy = %+v (doc %s), want %+v (doc %s)", got, got.Doc, want, want.Doc)
	}
	sameTime(t, "policy CreatedAt", got.CreatedAt, want.CreatedAt)
}

// testPutPolicyConcurrently has writers store the same version at once:
// one wins and the others are told their version is stale. Then writers
// that read, write and retry on ErrStale, as an admin console does, must
// end with every version stored once, without gaps.
func testPutPolicyConcurrently(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	start := lastSeq(t, st)
	const rounds = 10
	for v := int64(1); v <= rounds; v++ {
		errs := race(4, func(i int) error {
			return st.PutPolicy(ctx, &store.Policy{Tenant: "acme", Version: v, Doc: json.RawMessage(fmt.Sprintf(`{"writer":%d}`, i))})
		})
		if n := winners(t, errs, store.ErrStale); n != 1 {
			t.Fatalf("version %d: %d writers succeeded (%v)", v, n, errs)
		}
	}

	const writers, each = 4, 5
	for _, err := range race(writers, func(w int) error {
		for range each {
			for {
				cur, err := st.Policy(ctx, "acme")
				if err != nil {
					return err
				}
				err = st.PutPolicy(ctx, &store.Policy{Tenant: "acme", Version: cur.Version + 1, Author: fmt.Sprint(w)})
				if err == nil {
					break
				}
				if !errors.Is(err, store.ErrStale) {
					return err
				}
			}
		}
		return nil
	}) {
		must(t, err)
	}
	const total = rounds + writers*each
	hist, err := st.PolicyHistory(ctx, "acme", 0)
	must(t, err)
	if len(hist) != total {
		t.Fatalf("%d versions, want %d", len(hist), total)
	}
	for i, p := range hist {
		if p.Version != int64(total-i) {
			t.Fatalf("history[%d] is version %d, want %d", i, p.Version, total-i)
		}
	}
	events := feed(t, st, start)
	if len(events) != total {
		t.Fatalf("%d PolicyChanged events for %d versions", len(events), total)
	}
	for i, e := range events {
		if e.Kind != store.PolicyChanged || e.Subject != strconv.Itoa(i+1) {
			t.Fatalf("event %d = %+v, want version %d", i, e, i+1)
		}
	}
}

func testCategories(t *testing.T, st store.Store) {
	ctx := t.Context()
	_, _, err := st.Categories(ctx)
	is(t, err, store.ErrNotFound)
	if err := st.PutCategories(ctx, "", []byte("x"), t0); err == nil {
		t.Error("PutCategories accepted an empty version")
	}
	start := lastSeq(t, st)

	v1 := bytes.Repeat([]byte("gambling\texample.test\n"), 1000)
	must(t, st.PutCategories(ctx, "2026.05.01", v1, t0))
	version, data, err := st.Categories(ctx)
	must(t, err)
	if version != "2026.05.01" || !bytes.Equal(data, v1) {
		t.Fatalf("Categories = %q, %d bytes", version, len(data))
	}
	v2 := []byte{0, 1, 2, 0xff}
	must(t, st.PutCategories(ctx, "2026.05.02", v2, t0.Add(time.Hour)))
	version, data, err = st.Categories(ctx)
	must(t, err)
	if version != "2026.05.02" || !bytes.Equal(data, v2) {
		t.Fatalf("after replacement: Categories = %q, %x", version, data)
	}
	events := wantFeed(t, st, start,
		event{"", store.CategoriesChanged, "2026.05.01"},
		event{"", store.CategoriesChanged, "2026.05.02"})
	sameTime(t, "event At", events[0].At, t0)
	sameTime(t, "event At", events[1].At, t0.Add(time.Hour))
}

// access returns a record with every field set, distinct for i.
func access(i int, tenant, userID, host string, at time.Time) *store.AccessRecord {
	return &store.AccessRecord{
		At: at, Tenant: tenant, UserID: userID, Device: "dev-" + userID, SessionID: "sess-" + userID,
		Client: "192.0.2.7:51234", Method: "GET", Host: host, Path: "/" + strconv.Itoa(i), Status: 200 + i%3,
		BytesIn: int64(100 + i), BytesOut: 1<<33 + int64(i), // beyond 32 bits
		Duration: 1234*time.Millisecond + time.Duration(i)*time.Microsecond + 789, // the nanoseconds need not survive
		Decision: "allow", Rule: "default", Ref: "ref-" + strconv.Itoa(i),
	}
}

// sameAccess compares records: At to the millisecond, Duration to the
// microsecond.
func sameAccess(t testing.TB, got, want *store.AccessRecord) {
	t.Helper()
	g, w := *got, *want
	sameTime(t, "At", g.At, w.At)
	g.At, w.At = time.Time{}, time.Time{}
	g.Duration, w.Duration = g.Duration.Truncate(time.Microsecond), w.Duration.Truncate(time.Microsecond)
	if g != w {
		t.Errorf("access record = %+v, want %+v", g, w)
	}
}

func paths(rs []*store.AccessRecord) []string {
	return ids(rs, func(r *store.AccessRecord) string { return r.Path })
}

func testAccessLog(t *testing.T, st store.Store) {
	ctx := t.Context()
	must(t, st.AppendAccess(ctx, nil))
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	// Seq order is append order, not At order: record 4 arrived late.
	batch := []*store.AccessRecord{
		access(0, "acme", "alice", "example.com", sec(0)),
		access(1, "acme", "bob", "example.com", sec(1)),
		access(2, "acme", "alice", "other.test", sec(2)),
		access(3, "beta", "alice", "example.com", sec(2)),
		access(4, "acme", "alice", "example.com", sec(-10)),
		access(5, "gamma", "", "example.com", time.Time{}), // before login; At left to the store
	}
	batch[5].Decision, batch[5].Status = "auth", 407
	must(t, st.AppendAccess(ctx, batch))
	for i, r := range batch {
		if r.Seq == 0 || (i > 0 && r.Seq <= batch[i-1].Seq) {
			t.Fatalf("record %d: seq %d after %d", i, r.Seq, batch[max(i-1, 0)].Seq)
		}
	}
	if batch[5].At.IsZero() {
		t.Fatal("AppendAccess left At zero")
	}
	more := []*store.AccessRecord{access(6, "acme", "alice", "example.com", sec(3))}
	must(t, st.AppendAccess(ctx, more))
	if more[0].Seq <= batch[5].Seq {
		t.Fatalf("seq %d in a later batch, after %d", more[0].Seq, batch[5].Seq)
	}
	all := append(slices.Clone(batch), more...)

	got, err := st.AccessLog(ctx, store.AccessQuery{Tenant: "acme"})
	must(t, err)
	if p := paths(got); !slices.Equal(p, []string{"/0", "/1", "/2", "/4", "/6"}) {
		t.Fatalf("AccessLog(acme) = %v", p)
	}
	for _, r := range got {
		i, _ := strconv.Atoi(r.Path[1:])
		sameAccess(t, r, all[i])
	}

	for _, tc := range []struct {
		name string
		q    store.AccessQuery
		want []string
	}{
		{"tenant", store.AccessQuery{Tenant: "beta"}, []string{"/3"}},
		{"stamped by the store", store.AccessQuery{Tenant: "gamma", From: batch[5].At, To: batch[5].At.Add(time.Millisecond)}, []string{"/5"}},
		{"user", store.AccessQuery{Tenant: "acme", UserID: "alice"}, []string{"/0", "/2", "/4", "/6"}},
		{"host", store.AccessQuery{Tenant: "acme", Host: "example.com"}, []string{"/0", "/1", "/4", "/6"}},
		{"host exactly", store.AccessQuery{Tenant: "acme", Host: "EXAMPLE.COM"}, []string{}},
		{"host not a suffix", store.AccessQuery{Tenant: "acme", Host: "com"}, []string{}},
		{"user and host", store.AccessQuery{Tenant: "acme", UserID: "alice", Host: "example.com"}, []string{"/0", "/4", "/6"}},
		{"unknown user", store.AccessQuery{Tenant: "acme", UserID: "nobody"}, []string{}},
		{"unknown tenant", store.AccessQuery{Tenant: "nope"}, []string{}},
		{"from, inclusive", store.AccessQuery{Tenant: "acme", From: sec(1), To: sec(10)}, []string{"/1", "/2", "/6"}},
		{"to, exclusive", store.AccessQuery{Tenant: "acme", To: sec(2)}, []string{"/0", "/1", "/4"}},
		{"range", store.AccessQuery{Tenant: "acme", From: sec(0), To: sec(3)}, []string{"/0", "/1", "/2"}},
		{"empty range", store.AccessQuery{Tenant: "acme", From: sec(1), To: sec(1)}, []string{}},
		{"user in range", store.AccessQuery{Tenant: "acme", UserID: "alice", From: sec(-10), To: sec(1)}, []string{"/0", "/4"}},
		{"host in range", store.AccessQuery{Tenant: "acme", Host: "example.com", From: sec(1)}, []string{"/1", "/6"}},
		{"after", store.AccessQuery{Tenant: "acme", After: batch[2].Seq}, []string{"/4", "/6"}},
		{"after and user", store.AccessQuery{Tenant: "acme", UserID: "alice", After: batch[0].Seq}, []string{"/2", "/4", "/6"}},
		{"limit", store.AccessQuery{Tenant: "acme", Limit: 2}, []string{"/0", "/1"}},
		{"page", store.AccessQuery{Tenant: "acme", After: batch[1].Seq, Limit: 2}, []string{"/2", "/4"}},
		{"after the last", store.AccessQuery{Tenant: "acme", After: more[0].Seq}, []string{}},
	} {
		got, err := st.AccessLog(ctx, tc.q)
		must(t, err)
		if p := paths(got); !slices.Equal(p, tc.want) {
			t.Errorf("%s: AccessLog(%+v) = %v, want %v", tc.name, tc.q, p, tc.want)
		}
	}
	if _, err := st.AccessLog(ctx, store.AccessQuery{UserID: "alice"}); err == nil {
		t.Error("AccessLog without a tenant did not fail")
	}
}

// testAccessLogBatches appends more records in one call than one statement
// carries, and reads them back by pages of the default size: every record
// has the seq it was given, in record order.
func testAccessLogBatches(t *testing.T, st store.Store) {
	ctx := t.Context()
	const n = 1300
	batch := make([]*store.AccessRecord, n)
	for i := range batch {
		batch[i] = access(i, "acme", "u"+strconv.Itoa(i%7), "h"+strconv.Itoa(i%5)+".test", t0.Add(time.Duration(i)*time.Millisecond))
	}
	must(t, st.AppendAccess(ctx, batch))
	for i := 1; i < n; i++ {
		if batch[i].Seq <= batch[i-1].Seq {
			t.Fatalf("record %d: seq %d after %d", i, batch[i].Seq, batch[i-1].Seq)
		}
	}
	first, err := st.AccessLog(ctx, store.AccessQuery{Tenant: "acme"})
	must(t, err)
	if len(first) != 1000 {
		t.Fatalf("a query without a limit returned %d records, want 1000", len(first))
	}
	rest, err := st.AccessLog(ctx, store.AccessQuery{Tenant: "acme", After: first[len(first)-1].Seq, Limit: -1})
	must(t, err)
	got := append(first, rest...)
	if len(got) != n {
		t.Fatalf("read back %d records, want %d", len(got), n)
	}
	for i, r := range got {
		if r.Seq != batch[i].Seq {
			t.Fatalf("record %d: stored with seq %d, AppendAccess said %d", i, r.Seq, batch[i].Seq)
		}
		sameAccess(t, r, batch[i])
	}
	u3, err := st.AccessLog(ctx, store.AccessQuery{Tenant: "acme", UserID: "u3", From: t0.Add(100 * time.Millisecond), To: t0.Add(200 * time.Millisecond)})
	must(t, err)
	var want []string
	for i := 100; i < 200; i++ {
		if i%7 == 3 {
			want = append(want, "/"+strconv.Itoa(i))
		}
	}
	if p := paths(u3); !slices.Equal(p, want) {
		t.Fatalf("u3 in [100ms, 200ms) = %v, want %v", p, want)
	}
}

// testAccessLogConcurrently has gateways append batches at once while a
// reader follows the log by cursor: seqs are unique, and the reader sees
// every record exactly once, with the seq its writer was told.
func testAccessLogConcurrently(t *testing.T, st store.Store) {
	ctx := t.Context()
	const writers, batches, size = 6, 5, 40
	seqOf := make(map[string]int64) // by Path
	writing, reading := make(chan struct{}), make(chan struct{})
	var read []*store.AccessRecord
	var readErr error
	go func() {
		defer close(reading)
		var after int64
		for {
			// Once the writers are done before a query, an empty page means
			// the reader has seen everything.
			var done bool
			select {
			case <-writing:
				done = true
			default:
			}
			page, err := st.AccessLog(ctx, store.AccessQuery{Tenant: "acme", After: after, Limit: 50})
			if err != nil {
				readErr = err
				return
			}
			if len(page) == 0 && done {
				return
			}
			read = append(read, page...)
			if len(page) > 0 {
				after = page[len(page)-1].Seq
			}
		}
	}()
	recs := make([][]*store.AccessRecord, writers)
	for _, err := range race(writers, func(w int) error {
		for b := range batches {
			batch := make([]*store.AccessRecord, size)
			for i := range batch {
				batch[i] = access(i, "acme", "u", "h.test", t0)
				batch[i].Path = fmt.Sprintf("/%d/%d/%d", w, b, i)
			}
			if err := st.AppendAccess(ctx, batch); err != nil {
				return err
			}
			recs[w] = append(recs[w], batch...)
		}
		return nil
	}) {
		must(t, err)
	}
	close(writing)
	<-reading
	must(t, readErr)
	for _, rs := range recs {
		for _, r := range rs {
			seqOf[r.Path] = r.Seq
		}
	}
	if len(read) != writers*batches*size || len(seqOf) != len(read) {
		t.Fatalf("the reader saw %d records, %d were appended", len(read), len(seqOf))
	}
	seen := make(map[int64]bool)
	for i, r := range read {
		if seen[r.Seq] || (i > 0 && r.Seq <= read[i-1].Seq) {
			t.Fatalf("seq %d read twice or out of order", r.Seq)
		}
		seen[r.Seq] = true
		if seqOf[r.Path] != r.Seq {
			t.Fatalf("record %s: read with seq %d, its writer was told %d", r.Path, r.Seq, seqOf[r.Path])
		}
	}
}
