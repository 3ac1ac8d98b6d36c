package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"vigie/platform/store"
	"vigie/platform/store/storetest"
)

// BenchmarkRotateRefreshToken measures serial rotations, one session's
// chain of tokens, as a refresh grant does them. The target on SQLite is
// 2,500/s on a 2-core machine. PostgreSQL runs on pgtest's throwaway server,
// with fsync off: its figure is a floor for round trips, not for disks.
func BenchmarkRotateRefreshToken(b *testing.B) {
	for _, db := range []struct {
		name string
		open func(testing.TB) store.Store
	}{
		{"sqlite", storetest.SQLite},
		{"postgres", storetest.Postgres},
	} {
		b.Run(db.name, func(b *testing.B) {
			ctx := context.Background()
			st := db.open(b)
			if err := st.CreateTenant(ctx, &store.Tenant{ID: "acme"}); err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			sess := &store.Session{Tenant: "acme", ID: "s", UserID: "u", ExpiresAt: now.Add(24 * time.Hour)}
			if err := st.CreateSession(ctx, sess, &store.RefreshToken{Hash: "h0"}); err != nil {
				b.Fatal(err)
			}
			prev := "h0"
			i := 0
			for b.Loop() {
				i++
				next := fmt.Sprintf("%064x", i) // as long as a hex SHA-256
				if _, err := st.RotateRefreshToken(ctx, "acme", prev, &store.RefreshToken{Hash: next}, now); err != nil {
					b.Fatal(err)
				}
				prev = next
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// BenchmarkAppendAccess measures the access log's write path as gateway
// nodes use it: batches of 500 records of 200 users and 50 hosts, one call
// each, into a log that grows as the benchmark runs. Most of the cost is the
// user and host indexes, which each batch touches in as many places as it
// has users and hosts. The same caveat on PostgreSQL's figure applies as
// above.
func BenchmarkAppendAccess(b *testing.B) {
	const size = 500
	for _, db := range []struct {
		name string
		open func(testing.TB) store.Store
	}{
		{"sqlite", storetest.SQLite},
		{"postgres", storetest.Postgres},
	} {
		b.Run(db.name, func(b *testing.B) {
			ctx := context.Background()
			st := db.open(b)
			batch := make([]*store.AccessRecord, size)
			for i := range batch {
				batch[i] = &store.AccessRecord{
					Tenant: "acme",
					UserID: fmt.Sprintf("user-%03d", i%200), Device: "device", SessionID: "session-0123456789",
					Client: "198.51.100.7:51234", Method: "GET", Host: fmt.Sprintf("host-%02d.example.com", i%50),
					Path: "/some/path?q=1", Status: 200, BytesIn: 512, BytesOut: 48_000, Duration: 35 * time.Millisecond,
					Decision: "allow", Rule: "default",
				}
			}
			// Time moves on from batch to batch, as it does for a gateway:
			// the time indexes grow at their end.
			at := time.Now()
			for b.Loop() {
				for _, r := range batch {
					r.At = at
					at = at.Add(time.Millisecond)
				}
				if err := st.AppendAccess(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
