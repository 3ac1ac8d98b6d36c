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
