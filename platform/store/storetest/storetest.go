// Package storetest is the behaviour every store.Store must have, written
// once as a test suite (Run) that the SQLite and PostgreSQL stores both
// pass, and helpers that open a throwaway store for the tests of other
// packages (SQLite, Postgres). It is a normal package so that those tests
// can import it; nothing else should.
package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"vigie/platform/store"
)

// Run runs the suite as parallel subtests, each on a new store from open.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st store.Store)
	}{
		{"Tenants", testTenants},
		{"Times", testTimes},
		{"Users", testUsers},
		{"ListUsers", testListUsers},
		{"Groups", testGroups},
		{"ListGroups", testListGroups},
		{"DeleteUserLeavesGroups", testDeleteUserLeavesGroups},
		{"SigningKeys", testSigningKeys},
		{"AuthRequests", testAuthRequests},
		{"AuthCodes", testAuthCodes},
		{"TakeConcurrently", testTakeConcurrently},
		{"SeeAssertion", testSeeAssertion},
		{"Sessions", testSessions},
		{"Rotate", testRotate},
		{"RotateReused", testRotateReused},
		{"RotateConcurrently", testRotateConcurrently},
		{"RevokeSession", testRevokeSession},
		{"RevokeUserSessions", testRevokeUserSessions},
		{"Revocations", testRevocations},
		{"RevocationsConcurrently", testRevocationsConcurrently},
		{"DeleteExpired", testDeleteExpired},
		{"SCIMTokens", testSCIMTokens},
		{"Audit", testAudit},
		{"ConcurrentWriters", testConcurrentWriters},
		{"CAs", testCAs},
		{"Policies", testPolicies},
		{"PutPolicyConcurrently", testPutPolicyConcurrently},
		{"Categories", testCategories},
		{"AccessLog", testAccessLog},
		{"AccessLogBatches", testAccessLogBatches},
		{"AccessLogConcurrently", testAccessLogConcurrently},
		{"DistributionKeys", testDistributionKeys},
		{"EnrollmentSecrets", testEnrollmentSecrets},
		{"Devices", testDevices},
		{"Artifacts", testArtifacts},
		{"PutArtifactConcurrently", testPutArtifactConcurrently},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// t0 is a fixed "now" for the methods that take one. Its nanoseconds check
// that stores keep at least milliseconds.
var t0 = time.Date(2026, 5, 4, 10, 30, 0, 123_456_789, time.UTC)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func is(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

// sameTime reports whether got is want to the millisecond, in UTC.
func sameTime(t testing.TB, what string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want the zero time", what, got)
		}
		return
	}
	d := got.Sub(want)
	if d < 0 {
		d = -d
	}
	if d >= time.Millisecond || got.Location() != time.UTC {
		t.Errorf("%s = %v, want %v in UTC", what, got, want)
	}
}

func tenant(t testing.TB, st store.Store, id string) {
	t.Helper()
	must(t, st.CreateTenant(t.Context(), &store.Tenant{ID: id, Name: "Tenant " + id}))
}

func user(t testing.TB, st store.Store, tenant, id, userName string) *store.User {
	t.Helper()
	u := &store.User{Tenant: tenant, ID: id, UserName: userName, DisplayName: "User " + userName, Active: true}
	must(t, st.CreateUser(t.Context(), u))
	return u
}

func session(t testing.TB, st store.Store, tenant, id, userID, token string, expires time.Time) *store.Session {
	t.Helper()
	s := &store.Session{Tenant: tenant, ID: id, UserID: userID, Device: "laptop", AuthTime: t0.Add(-time.Minute), ExpiresAt: expires}
	must(t, st.CreateSession(t.Context(), s, &store.RefreshToken{Hash: token}))
	return s
}

func feed(t testing.TB, st store.Store, after int64) []*store.Revocation {
	t.Helper()
	rs, err := st.Revocations(t.Context(), after, 0)
	must(t, err)
	return rs
}

func testTenants(t *testing.T, st store.Store) {
	ctx := t.Context()
	acme := &store.Tenant{ID: "acme", Name: "Acme", Settings: json.RawMessage(`{"fail":"open"}`)}
	must(t, st.CreateTenant(ctx, acme))
	if acme.Version != 1 || acme.CreatedAt.IsZero() || acme.UpdatedAt.IsZero() {
		t.Fatalf("after create: version %d, created %v, updated %v", acme.Version, acme.CreatedAt, acme.UpdatedAt)
	}
	is(t, st.CreateTenant(ctx, &store.Tenant{ID: "acme"}), store.ErrConflict)
	tenant(t, st, "beta")

	got, err := st.Tenant(ctx, "acme")
	must(t, err)
	if got.Name != "Acme" || !bytes.Equal(got.Settings, acme.Settings) || got.IdP != nil || got.SP != nil || got.Version != 1 {
		t.Fatalf("got %+v", got)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, acme.CreatedAt)
	_, err = st.Tenant(ctx, "nope")
	is(t, err, store.ErrNotFound)

	all, err := st.Tenants(ctx)
	must(t, err)
	if len(all) != 2 || all[0].ID != "acme" || all[1].ID != "beta" {
		t.Fatalf("Tenants = %v", all)
	}

	got.Name, got.IdP, got.SP = "Acme Corp", json.RawMessage(`{"metadata":"<xml/>"}`), json.RawMessage(`"sealed"`)
	must(t, st.UpdateTenant(ctx, got))
	if got.Version != 2 {
		t.Fatalf("version after update = %d, want 2", got.Version)
	}
	again, err := st.Tenant(ctx, "acme")
	must(t, err)
	if again.Name != "Acme Corp" || string(again.IdP) != `{"metadata":"<xml/>"}` || string(again.SP) != `"sealed"` || again.Version != 2 {
		t.Fatalf("after update: %+v", again)
	}
	stale := *got
	stale.Version = 1
	is(t, st.UpdateTenant(ctx, &stale), store.ErrStale)
	is(t, st.UpdateTenant(ctx, &store.Tenant{ID: "nope", Version: 1}), store.ErrNotFound)
}

// testTimes checks that times come back in UTC, to the millisecond, from
// any zone, before and after 1970, and that the zero time stays zero.
func testTimes(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	paris := time.FixedZone("CEST", 2*3600)
	for i, when := range []time.Time{
		time.Date(2026, 5, 4, 12, 30, 0, 999_999_999, paris),
		time.Date(1969, 12, 31, 23, 59, 59, 1_500_000, time.UTC),
		time.Date(2200, 1, 1, 0, 0, 0, 1_000_000, time.UTC),
	} {
		id := fmt.Sprintf("s%d", i)
		s := &store.Session{Tenant: "acme", ID: id, UserID: "u", AuthTime: when, CreatedAt: when, ExpiresAt: when.Add(time.Hour)}
		must(t, st.CreateSession(ctx, s, nil))
		got, err := st.Session(ctx, "acme", id)
		must(t, err)
		sameTime(t, "AuthTime", got.AuthTime, when)
		sameTime(t, "CreatedAt", got.CreatedAt, when)
		sameTime(t, "ExpiresAt", got.ExpiresAt, when.Add(time.Hour))
		sameTime(t, "RevokedAt", got.RevokedAt, time.Time{})
	}
	s := &store.Session{Tenant: "acme", ID: "zero", UserID: "u", ExpiresAt: t0}
	must(t, st.CreateSession(ctx, s, nil))
	got, err := st.Session(ctx, "acme", "zero")
	must(t, err)
	sameTime(t, "AuthTime", got.AuthTime, time.Time{})
	if got.CreatedAt.IsZero() {
		t.Error("CreatedAt was not set")
	}
}

func testUsers(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	alice := &store.User{Tenant: "acme", ID: "u1", UserName: "Alice", ExternalID: "ext-1", DisplayName: "Alice A.", Active: true,
		Attributes: json.RawMessage(`{"emails":[{"value":"alice@acme.test"}]}`)}
	must(t, st.CreateUser(ctx, alice))
	if alice.Version != 1 || alice.CreatedAt.IsZero() {
		t.Fatalf("after create: %+v", alice)
	}

	got, err := st.User(ctx, "acme", "u1")
	must(t, err)
	if got.UserName != "Alice" || got.ExternalID != "ext-1" || got.DisplayName != "Alice A." || !got.Active ||
		!bytes.Equal(got.Attributes, alice.Attributes) || got.Version != 1 || got.Tenant != "acme" {
		t.Fatalf("User = %+v", got)
	}
	byName, err := st.UserByName(ctx, "acme", "aLiCe")
	must(t, err)
	if byName.ID != "u1" {
		t.Fatalf("UserByName = %+v", byName)
	}
	_, err = st.UserByName(ctx, "beta", "alice")
	is(t, err, store.ErrNotFound)
	_, err = st.User(ctx, "beta", "u1")
	is(t, err, store.ErrNotFound)

	// userName is unique per tenant, case-insensitively (Unicode too).
	is(t, st.CreateUser(ctx, &store.User{Tenant: "acme", ID: "u2", UserName: "ALICE"}), store.ErrConflict)
	is(t, st.CreateUser(ctx, &store.User{Tenant: "acme", ID: "u1", UserName: "other"}), store.ErrConflict)
	user(t, st, "beta", "u1", "alice")
	user(t, st, "acme", "u3", "Élodie")
	is(t, st.CreateUser(ctx, &store.User{Tenant: "acme", ID: "u4", UserName: "éLODIE"}), store.ErrConflict)
	is(t, st.CreateUser(ctx, &store.User{Tenant: "nope", ID: "u1", UserName: "x"}), store.ErrNotFound)

	// Updates check the version, and keep names unique.
	got.UserName, got.Active = "Alicia", false
	must(t, st.UpdateUser(ctx, got))
	if got.Version != 2 {
		t.Fatalf("version after update = %d", got.Version)
	}
	again, err := st.UserByName(ctx, "acme", "ALICIA")
	must(t, err)
	if again.ID != "u1" || again.Active || again.Version != 2 {
		t.Fatalf("after update: %+v", again)
	}
	_, err = st.UserByName(ctx, "acme", "alice")
	is(t, err, store.ErrNotFound)
	stale := *again
	stale.Version = 1
	is(t, st.UpdateUser(ctx, &stale), store.ErrStale)
	u3, err := st.User(ctx, "acme", "u3")
	must(t, err)
	u3.UserName = "alicia"
	is(t, st.UpdateUser(ctx, u3), store.ErrConflict)
	u3.UserName = "ÉLODIE" // its own name in another case is no conflict
	must(t, st.UpdateUser(ctx, u3))
	is(t, st.UpdateUser(ctx, &store.User{Tenant: "acme", ID: "nope", UserName: "n", Version: 1}), store.ErrNotFound)

	must(t, st.DeleteUser(ctx, "acme", "u1"))
	_, err = st.User(ctx, "acme", "u1")
	is(t, err, store.ErrNotFound)
	is(t, st.DeleteUser(ctx, "acme", "u1"), store.ErrNotFound)
	if _, err := st.User(ctx, "beta", "u1"); err != nil {
		t.Fatalf("the other tenant's user: %v", err)
	}
}

func ids[T any](items []T, id func(T) string) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

func userIDs(us []*store.User) []string {
	return ids(us, func(u *store.User) string { return u.ID })
}

func groupIDs(gs []*store.Group) []string {
	return ids(gs, func(g *store.Group) string { return g.ID })
}

func testListUsers(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	// Creation order differs from ID order; e and c share a creation time
	// and are ordered by ID.
	for i, u := range []*store.User{
		{ID: "e", UserName: "eve", ExternalID: "EXT-1", DisplayName: "Team Red"},
		{ID: "c", UserName: "carol", ExternalID: "ext-1", DisplayName: "team red"},
		{ID: "a", UserName: "alice", DisplayName: "Team Blue"},
		{ID: "d", UserName: "dave"},
		{ID: "b", UserName: "bob"},
	} {
		u.Tenant = "acme"
		u.CreatedAt = t0.Add(time.Duration(max(i, 1)) * time.Second)
		must(t, st.CreateUser(ctx, u))
	}
	user(t, st, "beta", "x", "xavier")
	order := []string{"c", "e", "a", "d", "b"}

	for _, tc := range []struct {
		q     store.ListQuery
		want  []string
		total int
	}{
		{store.ListQuery{Count: -1}, order, 5},
		{store.ListQuery{Start: 1, Count: 2}, order[:2], 5},
		{store.ListQuery{Start: 2, Count: 2}, order[1:3], 5},
		{store.ListQuery{Start: 5, Count: 10}, order[4:], 5},
		{store.ListQuery{Start: 6, Count: 10}, []string{}, 5},
		{store.ListQuery{Start: 3, Count: -1}, order[2:], 5},
		{store.ListQuery{Count: 0}, []string{}, 5},
		{store.ListQuery{Attr: "userName", Value: "ALICE", Count: -1}, []string{"a"}, 1},
		{store.ListQuery{Attr: "userName", Value: "ALICE", Count: 0}, []string{}, 1},
		{store.ListQuery{Attr: "userName", Value: "nobody", Count: -1}, []string{}, 0},
		{store.ListQuery{Attr: "externalId", Value: "EXT-1", Count: -1}, []string{"e"}, 1},
		{store.ListQuery{Attr: "externalId", Value: "ext-1", Count: -1}, []string{"c"}, 1},
		{store.ListQuery{Attr: "displayName", Value: "TEAM RED", Count: -1}, []string{"c", "e"}, 2},
		{store.ListQuery{Attr: "displayName", Value: "team red", Start: 2, Count: 1}, []string{"e"}, 2},
	} {
		users, total, err := st.ListUsers(ctx, "acme", tc.q)
		must(t, err)
		if got := userIDs(users); !slices.Equal(got, tc.want) || total != tc.total {
			t.Errorf("ListUsers(%+v) = %v, total %d; want %v, total %d", tc.q, got, total, tc.want, tc.total)
		}
	}
	if _, _, err := st.ListUsers(ctx, "acme", store.ListQuery{Attr: "emails", Value: "x"}); err == nil {
		t.Error("a filter on an unsupported attribute did not fail")
	}
}

func members(t testing.TB, st store.Store, tenant, id string) []string {
	t.Helper()
	g, err := st.Group(t.Context(), tenant, id)
	must(t, err)
	m := slices.Clone(g.Members)
	slices.Sort(m)
	return m
}

func testGroups(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	for _, id := range []string{"a", "b", "c"} {
		user(t, st, "acme", id, "user-"+id)
	}
	user(t, st, "beta", "z", "zed")

	admins := &store.Group{Tenant: "acme", ID: "g1", DisplayName: "Admins", ExternalID: "x1", Members: []string{"a", "b", "a"},
		Attributes: json.RawMessage(`{"displayName":"Admins"}`)}
	must(t, st.CreateGroup(ctx, admins))
	if admins.Version != 1 {
		t.Fatalf("version = %d", admins.Version)
	}
	got, err := st.Group(ctx, "acme", "g1")
	must(t, err)
	if got.DisplayName != "Admins" || got.ExternalID != "x1" || string(got.Attributes) != `{"displayName":"Admins"}` || got.Version != 1 {
		t.Fatalf("Group = %+v", got)
	}
	if m := members(t, st, "acme", "g1"); !slices.Equal(m, []string{"a", "b"}) {
		t.Fatalf("members = %v", m)
	}
	_, err = st.Group(ctx, "beta", "g1")
	is(t, err, store.ErrNotFound)

	is(t, st.CreateGroup(ctx, &store.Group{Tenant: "acme", ID: "g2", DisplayName: "ADMINS"}), store.ErrConflict)
	must(t, st.CreateGroup(ctx, &store.Group{Tenant: "beta", ID: "g2", DisplayName: "admins"}))
	// A member must be a user of the same tenant, and a failed create
	// leaves nothing behind.
	is(t, st.CreateGroup(ctx, &store.Group{Tenant: "acme", ID: "g3", DisplayName: "Ghosts", Members: []string{"a", "ghost"}}), store.ErrNotFound)
	is(t, st.CreateGroup(ctx, &store.Group{Tenant: "acme", ID: "g3", DisplayName: "Ghosts", Members: []string{"z"}}), store.ErrNotFound)
	_, err = st.Group(ctx, "acme", "g3")
	is(t, err, store.ErrNotFound)
	must(t, st.CreateGroup(ctx, &store.Group{Tenant: "acme", ID: "g3", DisplayName: "Users"}))

	got.Members = []string{"c", "b"}
	got.DisplayName = "Administrators"
	must(t, st.UpdateGroup(ctx, got))
	if got.Version != 2 {
		t.Fatalf("version after update = %d", got.Version)
	}
	if m := members(t, st, "acme", "g1"); !slices.Equal(m, []string{"b", "c"}) {
		t.Fatalf("members after update = %v", m)
	}
	stale := *got
	stale.Version = 1
	is(t, st.UpdateGroup(ctx, &stale), store.ErrStale)
	bad := *got
	bad.Members = []string{"a", "ghost"}
	is(t, st.UpdateGroup(ctx, &bad), store.ErrNotFound)
	again, err := st.Group(ctx, "acme", "g1")
	must(t, err)
	if again.Version != 2 || again.DisplayName != "Administrators" || !slices.Equal(members(t, st, "acme", "g1"), []string{"b", "c"}) {
		t.Fatalf("a failed update changed the group: %+v", again)
	}
	clash := *again
	clash.DisplayName = "users"
	is(t, st.UpdateGroup(ctx, &clash), store.ErrConflict)
	is(t, st.UpdateGroup(ctx, &store.Group{Tenant: "acme", ID: "nope", DisplayName: "n", Version: 1}), store.ErrNotFound)

	// GroupsOfUser orders by displayName, case-insensitively.
	for _, g := range []*store.Group{
		{ID: "g4", DisplayName: "beta", Members: []string{"b"}},
		{ID: "g5", DisplayName: "Alpha", Members: []string{"b", "c"}},
		{ID: "g6", DisplayName: "gamma", Members: []string{"c"}},
	} {
		g.Tenant = "acme"
		must(t, st.CreateGroup(ctx, g))
	}
	of, err := st.GroupsOfUser(ctx, "acme", "b")
	must(t, err)
	if got := groupIDs(of); !slices.Equal(got, []string{"g1", "g5", "g4"}) {
		t.Fatalf("GroupsOfUser(b) = %v, want g1 (Administrators), g5 (Alpha), g4 (beta)", got)
	}
	if of[1].DisplayName != "Alpha" || of[1].Version != 1 || len(of[1].Members) != 0 {
		t.Fatalf("GroupsOfUser: g5 = %+v, want it without members", of[1])
	}
	of, err = st.GroupsOfUser(ctx, "acme", "nobody")
	must(t, err)
	if len(of) != 0 {
		t.Fatalf("GroupsOfUser(nobody) = %v", groupIDs(of))
	}

	must(t, st.DeleteGroup(ctx, "acme", "g5"))
	_, err = st.Group(ctx, "acme", "g5")
	is(t, err, store.ErrNotFound)
	is(t, st.DeleteGroup(ctx, "acme", "g5"), store.ErrNotFound)
	of, err = st.GroupsOfUser(ctx, "acme", "c")
	must(t, err)
	if got := groupIDs(of); !slices.Equal(got, []string{"g1", "g6"}) {
		t.Fatalf("GroupsOfUser(c) after delete = %v", got)
	}
}

func testListGroups(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	user(t, st, "acme", "u", "u")
	for i, g := range []*store.Group{
		{ID: "g3", DisplayName: "Sales", ExternalID: "S", Members: []string{"u"}},
		{ID: "g1", DisplayName: "Engineering", ExternalID: "s"},
		{ID: "g2", DisplayName: "Support"},
	} {
		g.Tenant = "acme"
		g.CreatedAt = t0.Add(time.Duration(i) * time.Second)
		must(t, st.CreateGroup(ctx, g))
	}
	for _, tc := range []struct {
		q     store.ListQuery
		want  []string
		total int
	}{
		{store.ListQuery{Count: -1}, []string{"g3", "g1", "g2"}, 3},
		{store.ListQuery{Start: 2, Count: 1}, []string{"g1"}, 3},
		{store.ListQuery{Count: 0}, []string{}, 3},
		{store.ListQuery{Attr: "displayName", Value: "SALES", Count: -1}, []string{"g3"}, 1},
		{store.ListQuery{Attr: "externalId", Value: "s", Count: -1}, []string{"g1"}, 1},
	} {
		groups, total, err := st.ListGroups(ctx, "acme", tc.q)
		must(t, err)
		if got := groupIDs(groups); !slices.Equal(got, tc.want) || total != tc.total {
			t.Errorf("ListGroups(%+v) = %v, total %d; want %v, total %d", tc.q, got, total, tc.want, tc.total)
		}
	}
	groups, _, err := st.ListGroups(ctx, "acme", store.ListQuery{Count: 1})
	must(t, err)
	if len(groups) != 1 || !slices.Equal(groups[0].Members, []string{"u"}) {
		t.Fatalf("ListGroups does not return members: %+v", groups)
	}
	if _, _, err := st.ListGroups(ctx, "acme", store.ListQuery{Attr: "userName", Value: "x"}); err == nil {
		t.Error("a filter on an unsupported attribute did not fail")
	}
}

func testDeleteUserLeavesGroups(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	user(t, st, "acme", "a", "a")
	user(t, st, "acme", "b", "b")
	must(t, st.CreateGroup(ctx, &store.Group{Tenant: "acme", ID: "g", DisplayName: "G", Members: []string{"a", "b"}}))
	must(t, st.DeleteUser(ctx, "acme", "a"))
	g, err := st.Group(ctx, "acme", "g")
	must(t, err)
	if !slices.Equal(g.Members, []string{"b"}) {
		t.Fatalf("members after the user's deletion = %v", g.Members)
	}
	if g.Version != 2 {
		t.Errorf("the group's version after losing a member = %d, want 2 (its SCIM ETag changed)", g.Version)
	}
	// The user's ID can be provisioned again, without old memberships.
	user(t, st, "acme", "a", "a")
	of, err := st.GroupsOfUser(ctx, "acme", "a")
	must(t, err)
	if len(of) != 0 {
		t.Fatalf("a recreated user is in %v", groupIDs(of))
	}
}

func testSigningKeys(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	k1 := &store.SigningKey{Tenant: "acme", KID: "k1", Private: []byte("sealed-1"), Public: []byte{1, 2, 3}, CreatedAt: t0, ActiveAt: t0.Add(time.Hour)}
	k2 := &store.SigningKey{Tenant: "acme", KID: "k0", Private: []byte("sealed-2"), Public: []byte{4}, CreatedAt: t0.Add(time.Minute), ActiveAt: t0.Add(2 * time.Hour)}
	must(t, st.AddSigningKey(ctx, k2))
	must(t, st.AddSigningKey(ctx, k1))
	must(t, st.AddSigningKey(ctx, &store.SigningKey{Tenant: "beta", KID: "k1", CreatedAt: t0}))
	is(t, st.AddSigningKey(ctx, &store.SigningKey{Tenant: "acme", KID: "k1", CreatedAt: t0}), store.ErrConflict)

	keys, err := st.SigningKeys(ctx, "acme")
	must(t, err)
	if len(keys) != 2 || keys[0].KID != "k1" || keys[1].KID != "k0" {
		t.Fatalf("SigningKeys = %v, want k1 then k0 (oldest first)", ids(keys, func(k *store.SigningKey) string { return k.KID }))
	}
	k := keys[0]
	if string(k.Private) != "sealed-1" || !bytes.Equal(k.Public, []byte{1, 2, 3}) || k.Tenant != "acme" {
		t.Fatalf("key = %+v", k)
	}
	sameTime(t, "CreatedAt", k.CreatedAt, t0)
	sameTime(t, "ActiveAt", k.ActiveAt, t0.Add(time.Hour))
	sameTime(t, "RetiredAt", k.RetiredAt, time.Time{})
	sameTime(t, "RemoveAt", k.RemoveAt, time.Time{})

	k.RetiredAt, k.RemoveAt = t0.Add(3*time.Hour), t0.Add(27*time.Hour)
	k.Public = []byte("ignored")
	must(t, st.UpdateSigningKey(ctx, k))
	keys, err = st.SigningKeys(ctx, "acme")
	must(t, err)
	sameTime(t, "RetiredAt", keys[0].RetiredAt, t0.Add(3*time.Hour))
	sameTime(t, "RemoveAt", keys[0].RemoveAt, t0.Add(27*time.Hour))
	if !bytes.Equal(keys[0].Public, []byte{1, 2, 3}) {
		t.Error("UpdateSigningKey changed the public key")
	}
	is(t, st.UpdateSigningKey(ctx, &store.SigningKey{Tenant: "acme", KID: "nope"}), store.ErrNotFound)

	must(t, st.DeleteSigningKey(ctx, "acme", "k1"))
	is(t, st.DeleteSigningKey(ctx, "acme", "k1"), store.ErrNotFound)
	keys, err = st.SigningKeys(ctx, "acme")
	must(t, err)
	if len(keys) != 1 || keys[0].KID != "k0" {
		t.Fatalf("after delete: %d keys", len(keys))
	}
	keys, err = st.SigningKeys(ctx, "beta")
	must(t, err)
	if len(keys) != 1 {
		t.Fatalf("the other tenant's keys: %d", len(keys))
	}
}

func testAuthRequests(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	r := &store.AuthRequest{Tenant: "acme", ID: "id-1", RedirectURI: "http://127.0.0.1:5000/cb", CodeChallenge: "chal", State: "st", Device: "dev",
		CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	must(t, st.PutAuthRequest(ctx, r))
	is(t, st.PutAuthRequest(ctx, r), store.ErrConflict)

	_, err := st.TakeAuthRequest(ctx, "beta", "id-1", t0)
	is(t, err, store.ErrNotFound)
	got, err := st.TakeAuthRequest(ctx, "acme", "id-1", t0.Add(time.Minute))
	must(t, err)
	if got.Tenant != "acme" || got.ID != "id-1" || got.RedirectURI != r.RedirectURI || got.CodeChallenge != "chal" || got.State != "st" || got.Device != "dev" {
		t.Fatalf("TakeAuthRequest = %+v", got)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, t0)
	sameTime(t, "ExpiresAt", got.ExpiresAt, r.ExpiresAt)
	_, err = st.TakeAuthRequest(ctx, "acme", "id-1", t0)
	is(t, err, store.ErrNotFound)

	// An expired request is reported, and gone.
	must(t, st.PutAuthRequest(ctx, &store.AuthRequest{Tenant: "acme", ID: "id-2", ExpiresAt: t0}))
	_, err = st.TakeAuthRequest(ctx, "acme", "id-2", t0)
	is(t, err, store.ErrExpired)
	_, err = st.TakeAuthRequest(ctx, "acme", "id-2", t0.Add(-time.Hour))
	is(t, err, store.ErrNotFound)
}

func testAuthCodes(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	c := &store.AuthCode{Tenant: "acme", Hash: "h1", UserID: "u1", SessionID: "s1", RedirectURI: "http://127.0.0.1/cb", CodeChallenge: "chal", Device: "dev", ExpiresAt: t0.Add(time.Minute)}
	must(t, st.PutAuthCode(ctx, c))
	is(t, st.PutAuthCode(ctx, c), store.ErrConflict)
	got, err := st.TakeAuthCode(ctx, "acme", "h1", t0)
	must(t, err)
	if got.UserID != "u1" || got.SessionID != "s1" || got.RedirectURI != c.RedirectURI || got.CodeChallenge != "chal" || got.Device != "dev" || got.Hash != "h1" {
		t.Fatalf("TakeAuthCode = %+v", got)
	}
	sameTime(t, "ExpiresAt", got.ExpiresAt, c.ExpiresAt)
	_, err = st.TakeAuthCode(ctx, "acme", "h1", t0)
	is(t, err, store.ErrNotFound)

	must(t, st.PutAuthCode(ctx, &store.AuthCode{Tenant: "acme", Hash: "h2", ExpiresAt: t0}))
	_, err = st.TakeAuthCode(ctx, "acme", "h2", t0.Add(time.Second))
	is(t, err, store.ErrExpired)
	_, err = st.TakeAuthCode(ctx, "acme", "h2", t0.Add(-time.Hour))
	is(t, err, store.ErrNotFound)
}

// race runs fn on n goroutines at once and returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			errs[i] = fn(i)
		})
	}
	start.Done()
	done.Wait()
	return errs
}

// winners counts nil errors, and fails on errors other than loser.
func winners(t testing.TB, errs []error, loser error) int {
	t.Helper()
	n := 0
	for _, err := range errs {
		switch {
		case err == nil:
			n++
		case !errors.Is(err, loser):
			t.Fatalf("got error %v, want nil or %v", err, loser)
		}
	}
	return n
}

func testTakeConcurrently(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	for round := range 10 {
		hash := fmt.Sprintf("code-%d", round)
		must(t, st.PutAuthCode(ctx, &store.AuthCode{Tenant: "acme", Hash: hash, ExpiresAt: t0.Add(time.Minute)}))
		errs := race(4, func(int) error {
			_, err := st.TakeAuthCode(ctx, "acme", hash, t0)
			return err
		})
		if n := winners(t, errs, store.ErrNotFound); n != 1 {
			t.Fatalf("round %d: %d goroutines took the same code", round, n)
		}
		id := fmt.Sprintf("req-%d", round)
		must(t, st.PutAuthRequest(ctx, &store.AuthRequest{Tenant: "acme", ID: id, ExpiresAt: t0.Add(time.Minute)}))
		errs = race(4, func(int) error {
			_, err := st.TakeAuthRequest(ctx, "acme", id, t0)
			return err
		})
		if n := winners(t, errs, store.ErrNotFound); n != 1 {
			t.Fatalf("round %d: %d goroutines took the same request", round, n)
		}
	}
}

func testSeeAssertion(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	must(t, st.SeeAssertion(ctx, "acme", "a1", now.Add(time.Hour), now))
	is(t, st.SeeAssertion(ctx, "acme", "a1", now.Add(time.Hour), now), store.ErrReplay)
	must(t, st.SeeAssertion(ctx, "beta", "a1", now.Add(time.Hour), now))
	// Once its record has expired, an ID may be seen again (it could not
	// be replayed anyway: the assertion itself has expired).
	must(t, st.SeeAssertion(ctx, "acme", "a2", now.Add(-time.Second), now))
	must(t, st.SeeAssertion(ctx, "acme", "a2", now.Add(time.Hour), now))
	is(t, st.SeeAssertion(ctx, "acme", "a2", now.Add(time.Hour), now), store.ErrReplay)

	errs := race(4, func(int) error { return st.SeeAssertion(ctx, "acme", "a3", now.Add(time.Hour), now) })
	if n := winners(t, errs, store.ErrReplay); n != 1 {
		t.Fatalf("%d goroutines saw the same assertion first", n)
	}
}

func testSessions(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	s := session(t, st, "acme", "s1", "u1", "h0", t0.Add(8*time.Hour))
	if s.CreatedAt.IsZero() {
		t.Error("CreatedAt was not set")
	}
	got, err := st.Session(ctx, "acme", "s1")
	must(t, err)
	if got.ID != "s1" || got.UserID != "u1" || got.Device != "laptop" || got.Tenant != "acme" || got.Reason != "" {
		t.Fatalf("Session = %+v", got)
	}
	sameTime(t, "AuthTime", got.AuthTime, s.AuthTime)
	sameTime(t, "ExpiresAt", got.ExpiresAt, s.ExpiresAt)
	sameTime(t, "RevokedAt", got.RevokedAt, time.Time{})
	_, err = st.Session(ctx, "beta", "s1")
	is(t, err, store.ErrNotFound)

	byToken, err := st.RefreshTokenSession(ctx, "acme", "h0")
	must(t, err)
	if byToken.ID != "s1" {
		t.Fatalf("RefreshTokenSession = %+v", byToken)
	}
	_, err = st.RefreshTokenSession(ctx, "beta", "h0")
	is(t, err, store.ErrNotFound)

	is(t, st.CreateSession(ctx, &store.Session{Tenant: "acme", ID: "s1", ExpiresAt: t0}, nil), store.ErrConflict)
	// A token hash is unique in its tenant; the failed session is not kept.
	is(t, st.CreateSession(ctx, &store.Session{Tenant: "acme", ID: "s2", ExpiresAt: t0}, &store.RefreshToken{Hash: "h0"}), store.ErrConflict)
	_, err = st.Session(ctx, "acme", "s2")
	is(t, err, store.ErrNotFound)
}

func testRotate(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	session(t, st, "acme", "s1", "u1", "h0", t0.Add(8*time.Hour))

	s, err := st.RotateRefreshToken(ctx, "acme", "h0", &store.RefreshToken{Hash: "h1"}, t0)
	must(t, err)
	if s == nil || s.ID != "s1" || s.UserID != "u1" {
		t.Fatalf("RotateRefreshToken = %+v", s)
	}
	_, err = st.RotateRefreshToken(ctx, "acme", "h1", &store.RefreshToken{Hash: "h2"}, t0.Add(time.Minute))
	must(t, err)
	// Spent tokens still name their session.
	for _, h := range []string{"h0", "h1", "h2"} {
		if s, err := st.RefreshTokenSession(ctx, "acme", h); err != nil || s.ID != "s1" {
			t.Fatalf("RefreshTokenSession(%s) = %v, %v", h, s, err)
		}
	}
	_, err = st.RotateRefreshToken(ctx, "acme", "unknown", &store.RefreshToken{Hash: "h9"}, t0)
	is(t, err, store.ErrNotFound)
	// A next hash that is taken fails the rotation, which does not spend.
	_, err = st.RotateRefreshToken(ctx, "acme", "h2", &store.RefreshToken{Hash: "h0"}, t0)
	is(t, err, store.ErrConflict)
	_, err = st.RotateRefreshToken(ctx, "acme", "h2", &store.RefreshToken{Hash: "h3"}, t0)
	must(t, err)

	// Past the session's end.
	session(t, st, "acme", "s2", "u1", "e0", t0.Add(time.Hour))
	_, err = st.RotateRefreshToken(ctx, "acme", "e0", &store.RefreshToken{Hash: "e1"}, t0.Add(time.Hour))
	is(t, err, store.ErrExpired)

	// Revoked.
	session(t, st, "acme", "s3", "u1", "r0", t0.Add(time.Hour))
	must(t, st.RevokeSession(ctx, "acme", "s3", "logout", t0))
	_, err = st.RotateRefreshToken(ctx, "acme", "r0", &store.RefreshToken{Hash: "r1"}, t0)
	is(t, err, store.ErrRevoked)
	_, err = st.RefreshTokenSession(ctx, "acme", "r1")
	is(t, err, store.ErrNotFound)
}

func testRotateReused(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	session(t, st, "acme", "s1", "u1", "h0", t0.Add(8*time.Hour))
	_, err := st.RotateRefreshToken(ctx, "acme", "h0", &store.RefreshToken{Hash: "h1"}, t0)
	must(t, err)
	last, err := st.LastRevocation(ctx)
	must(t, err)

	at := t0.Add(time.Minute)
	_, err = st.RotateRefreshToken(ctx, "acme", "h0", &store.RefreshToken{Hash: "x1"}, at)
	is(t, err, store.ErrReused)
	s, err := st.Session(ctx, "acme", "s1")
	must(t, err)
	sameTime(t, "RevokedAt", s.RevokedAt, at)
	if s.Reason == "" {
		t.Error("a session revoked for reuse has no reason")
	}
	events := feed(t, st, last)
	if len(events) != 1 || events[0].Kind != store.RevokeSession || events[0].Subject != "s1" || events[0].Tenant != "acme" || events[0].Reason == "" {
		t.Fatalf("feed after reuse = %+v, want one session revocation of s1", events)
	}
	sameTime(t, "event At", events[0].At, at)
	_, err = st.RefreshTokenSession(ctx, "acme", "x1")
	is(t, err, store.ErrNotFound)
	// The successor of the reused token dies with the session.
	_, err = st.RotateRefreshToken(ctx, "acme", "h1", &store.RefreshToken{Hash: "h2"}, at)
	is(t, err, store.ErrRevoked)
	if n := len(feed(t, st, last)); n != 1 {
		t.Fatalf("%d events after more attempts on a revoked session, want still 1", n)
	}
}

// testRotateConcurrently is reuse detection's hard case: two clients
// present the same token at once. One rotation succeeds, the other is a
// reuse, and the session ends revoked.
func testRotateConcurrently(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	for round := range 10 {
		id := fmt.Sprintf("s%d", round)
		old := id + "-h0"
		session(t, st, "acme", id, "u1", old, t0.Add(time.Hour))
		errs := race(2, func(i int) error {
			_, err := st.RotateRefreshToken(ctx, "acme", old, &store.RefreshToken{Hash: fmt.Sprintf("%s-next-%d", id, i)}, t0)
			return err
		})
		if n := winners(t, errs, store.ErrReused); n != 1 {
			t.Fatalf("round %d: %d rotations of one token succeeded (%v)", round, n, errs)
		}
		s, err := st.Session(ctx, "acme", id)
		must(t, err)
		if s.RevokedAt.IsZero() {
			t.Fatalf("round %d: the session survived a reuse", round)
		}
	}
}

func testRevokeSession(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	session(t, st, "acme", "s1", "u1", "h0", t0.Add(time.Hour))
	must(t, st.RevokeSession(ctx, "acme", "s1", "logout", t0))
	s, err := st.Session(ctx, "acme", "s1")
	must(t, err)
	sameTime(t, "RevokedAt", s.RevokedAt, t0)
	if s.Reason != "logout" {
		t.Errorf("Reason = %q", s.Reason)
	}
	events := feed(t, st, 0)
	if len(events) != 1 || events[0].Kind != store.RevokeSession || events[0].Subject != "s1" || events[0].Reason != "logout" || events[0].Tenant != "acme" {
		t.Fatalf("feed = %+v", events)
	}
	// Again: no error, no second event, the first revocation stands.
	must(t, st.RevokeSession(ctx, "acme", "s1", "again", t0.Add(time.Hour)))
	if n := len(feed(t, st, 0)); n != 1 {
		t.Fatalf("%d events after revoking twice", n)
	}
	s, err = st.Session(ctx, "acme", "s1")
	must(t, err)
	sameTime(t, "RevokedAt", s.RevokedAt, t0)
	is(t, st.RevokeSession(ctx, "acme", "nope", "x", t0), store.ErrNotFound)
}

func testRevokeUserSessions(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	session(t, st, "acme", "a1", "alice", "a1-h", t0.Add(time.Hour))
	session(t, st, "acme", "a2", "alice", "a2-h", t0.Add(time.Hour))
	session(t, st, "acme", "a3", "alice", "a3-h", t0.Add(-time.Hour)) // ended
	session(t, st, "acme", "a4", "alice", "a4-h", t0.Add(time.Hour))
	must(t, st.RevokeSession(ctx, "acme", "a4", "logout", t0.Add(-time.Minute)))
	session(t, st, "acme", "b1", "bob", "b1-h", t0.Add(time.Hour))
	last, err := st.LastRevocation(ctx)
	must(t, err)

	n, err := st.RevokeUserSessions(ctx, "acme", "alice", "offboarded", t0)
	must(t, err)
	if n != 2 {
		t.Fatalf("RevokeUserSessions = %d, want 2", n)
	}
	for _, id := range []string{"a1", "a2"} {
		s, err := st.Session(ctx, "acme", id)
		must(t, err)
		if s.RevokedAt.IsZero() || s.Reason != "offboarded" {
			t.Errorf("session %s: %+v", id, s)
		}
	}
	if s, _ := st.Session(ctx, "acme", "a4"); s.Reason != "logout" {
		t.Errorf("an earlier revocation was overwritten: %+v", s)
	}
	if s, _ := st.Session(ctx, "acme", "b1"); !s.RevokedAt.IsZero() {
		t.Errorf("another user's session was revoked")
	}
	events := feed(t, st, last)
	if len(events) != 1 || events[0].Kind != store.RevokeUser || events[0].Subject != "alice" || events[0].Reason != "offboarded" {
		t.Fatalf("feed = %+v, want one user event", events)
	}
	// Even with no session, gateways hear of the user.
	n, err = st.RevokeUserSessions(ctx, "acme", "carol", "deleted", t0)
	must(t, err)
	if n != 0 {
		t.Fatalf("RevokeUserSessions(carol) = %d", n)
	}
	events = feed(t, st, last)
	if len(events) != 2 || events[1].Kind != store.RevokeUser || events[1].Subject != "carol" {
		t.Fatalf("feed = %+v, want a user event for carol", events)
	}
}

func testRevocations(t *testing.T, st store.Store) {
	ctx := t.Context()
	last, err := st.LastRevocation(ctx)
	must(t, err)
	if last != 0 || len(feed(t, st, 0)) != 0 {
		t.Fatalf("a new store's feed: last %d", last)
	}
	var added []*store.Revocation
	for i, tn := range []string{"acme", "beta", "acme"} {
		r := &store.Revocation{Tenant: tn, Kind: store.RotateKeys, Subject: fmt.Sprintf("k%d", i), Reason: "rotation", At: t0.Add(time.Duration(i) * time.Second)}
		must(t, st.AddRevocation(ctx, r))
		if len(added) > 0 && r.Seq <= added[len(added)-1].Seq {
			t.Fatalf("seq %d after %d", r.Seq, added[len(added)-1].Seq)
		}
		added = append(added, r)
	}
	noAt := &store.Revocation{Tenant: "beta", Kind: store.RevokeSession, Subject: "s"}
	must(t, st.AddRevocation(ctx, noAt))
	if noAt.At.IsZero() {
		t.Error("AddRevocation left At zero")
	}
	added = append(added, noAt)

	last, err = st.LastRevocation(ctx)
	must(t, err)
	if last != noAt.Seq {
		t.Fatalf("LastRevocation = %d, want %d", last, noAt.Seq)
	}
	all := feed(t, st, 0)
	if len(all) != len(added) {
		t.Fatalf("feed has %d events, want %d", len(all), len(added))
	}
	for i, r := range all {
		w := added[i]
		if r.Seq != w.Seq || r.Tenant != w.Tenant || r.Kind != w.Kind || r.Subject != w.Subject || r.Reason != w.Reason {
			t.Errorf("event %d = %+v, want %+v", i, r, w)
		}
		sameTime(t, "At", r.At, w.At)
	}
	page, err := st.Revocations(ctx, added[0].Seq, 2)
	must(t, err)
	if len(page) != 2 || page[0].Seq != added[1].Seq || page[1].Seq != added[2].Seq {
		t.Fatalf("Revocations(after first, 2) = %+v", page)
	}
	if rest := feed(t, st, last); len(rest) != 0 {
		t.Fatalf("events after the last: %+v", rest)
	}
}

// testRevocationsConcurrently checks that seqs are unique and that the feed
// lists every event once, in seq order, however appends interleave.
func testRevocationsConcurrently(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	const n = 20
	for _, err := range race(n, func(i int) error {
		if i%2 == 0 {
			return st.AddRevocation(ctx, &store.Revocation{Tenant: "acme", Kind: store.RotateKeys, Subject: fmt.Sprint(i)})
		}
		_, err := st.RevokeUserSessions(ctx, "acme", fmt.Sprint(i), "test", t0)
		return err
	}) {
		must(t, err)
	}
	all := feed(t, st, 0)
	if len(all) != n {
		t.Fatalf("feed has %d events, want %d", len(all), n)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("feed out of order: %d after %d", all[i].Seq, all[i-1].Seq)
		}
	}
}

func testDeleteExpired(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	now := time.Now()
	cutoff := now.Add(-time.Hour)
	must(t, st.PutAuthRequest(ctx, &store.AuthRequest{Tenant: "acme", ID: "old", ExpiresAt: now.Add(-time.Second)}))
	must(t, st.PutAuthRequest(ctx, &store.AuthRequest{Tenant: "acme", ID: "live", ExpiresAt: now.Add(time.Minute)}))
	must(t, st.PutAuthCode(ctx, &store.AuthCode{Tenant: "acme", Hash: "old", ExpiresAt: now}))
	must(t, st.PutAuthCode(ctx, &store.AuthCode{Tenant: "acme", Hash: "live", ExpiresAt: now.Add(time.Minute)}))
	must(t, st.SeeAssertion(ctx, "acme", "live", now.Add(time.Hour), now))
	session(t, st, "acme", "ended-long-ago", "u", "t1", now.Add(-2*time.Hour))
	session(t, st, "acme", "ended-recently", "u", "t2", now.Add(-30*time.Minute))
	session(t, st, "acme", "revoked-long-ago", "u", "t3", now.Add(time.Hour))
	must(t, st.RevokeSession(ctx, "acme", "revoked-long-ago", "x", now.Add(-2*time.Hour)))
	session(t, st, "acme", "revoked-recently", "u", "t4", now.Add(time.Hour))
	must(t, st.RevokeSession(ctx, "acme", "revoked-recently", "x", now.Add(-time.Minute)))
	session(t, st, "acme", "active", "u", "t5", now.Add(time.Hour))

	must(t, st.DeleteExpired(ctx, now, cutoff))

	_, err := st.TakeAuthRequest(ctx, "acme", "old", now.Add(-time.Hour))
	is(t, err, store.ErrNotFound)
	_, err = st.TakeAuthRequest(ctx, "acme", "live", now)
	must(t, err)
	_, err = st.TakeAuthCode(ctx, "acme", "old", now.Add(-time.Hour))
	is(t, err, store.ErrNotFound)
	_, err = st.TakeAuthCode(ctx, "acme", "live", now)
	must(t, err)
	is(t, st.SeeAssertion(ctx, "acme", "live", now.Add(time.Hour), now), store.ErrReplay)
	for _, gone := range []struct{ session, token string }{{"ended-long-ago", "t1"}, {"revoked-long-ago", "t3"}} {
		_, err = st.Session(ctx, "acme", gone.session)
		is(t, err, store.ErrNotFound)
		_, err = st.RefreshTokenSession(ctx, "acme", gone.token)
		is(t, err, store.ErrNotFound)
	}
	for _, kept := range []struct{ session, token string }{{"ended-recently", "t2"}, {"revoked-recently", "t4"}, {"active", "t5"}} {
		_, err = st.Session(ctx, "acme", kept.session)
		must(t, err)
		_, err = st.RefreshTokenSession(ctx, "acme", kept.token)
		must(t, err)
	}
}

func testSCIMTokens(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	must(t, st.AddSCIMToken(ctx, "acme", "okta", "hash-1", t0))
	is(t, st.AddSCIMToken(ctx, "acme", "okta", "hash-2", t0), store.ErrConflict)
	is(t, st.AddSCIMToken(ctx, "acme", "entra", "hash-1", t0), store.ErrConflict)
	must(t, st.AddSCIMToken(ctx, "beta", "okta", "hash-1", t0))
	is(t, st.AddSCIMToken(ctx, "nope", "okta", "hash-1", t0), store.ErrNotFound)

	name, err := st.SCIMTokenName(ctx, "acme", "hash-1")
	must(t, err)
	if name != "okta" {
		t.Fatalf("SCIMTokenName = %q", name)
	}
	_, err = st.SCIMTokenName(ctx, "acme", "hash-2")
	is(t, err, store.ErrNotFound)
	must(t, st.DeleteSCIMToken(ctx, "acme", "okta"))
	_, err = st.SCIMTokenName(ctx, "acme", "hash-1")
	is(t, err, store.ErrNotFound)
	is(t, st.DeleteSCIMToken(ctx, "acme", "okta"), store.ErrNotFound)
	if _, err := st.SCIMTokenName(ctx, "beta", "hash-1"); err != nil {
		t.Fatalf("the other tenant's token: %v", err)
	}
}

func testAudit(t *testing.T, st store.Store) {
	ctx := t.Context()
	events := []*store.AuditEvent{
		{At: t0, Tenant: "acme", Actor: "admin", Action: "tenant.create", Target: "acme", Detail: json.RawMessage(`{"name":"Acme"}`)},
		{At: t0, Tenant: "", Actor: "system", Action: "platform.start"},
		{Tenant: "acme", Actor: "user:u1", Action: "login.success", Target: "u1"},
		{At: t0, Tenant: "beta", Actor: "scim:okta", Action: "user.create", Target: "u9"},
		{At: t0, Tenant: "acme", Actor: "system", Action: "token.reuse", Target: "s1"},
	}
	for i, e := range events {
		must(t, st.Audit(ctx, e))
		if e.Seq == 0 || e.At.IsZero() || (i > 0 && e.Seq <= events[i-1].Seq) {
			t.Fatalf("event %d: seq %d, at %v", i, e.Seq, e.At)
		}
	}
	acme, err := st.AuditEvents(ctx, "acme", 0, 0)
	must(t, err)
	want := []*store.AuditEvent{events[0], events[2], events[4]}
	if len(acme) != len(want) {
		t.Fatalf("AuditEvents(acme) has %d events, want %d", len(acme), len(want))
	}
	for i, e := range acme {
		w := want[i]
		if e.Seq != w.Seq || e.Tenant != w.Tenant || e.Actor != w.Actor || e.Action != w.Action || e.Target != w.Target || !bytes.Equal(e.Detail, w.Detail) {
			t.Errorf("event %d = %+v, want %+v", i, e, w)
		}
		sameTime(t, "At", e.At, w.At)
	}
	page, err := st.AuditEvents(ctx, "acme", events[0].Seq, 1)
	must(t, err)
	if len(page) != 1 || page[0].Seq != events[2].Seq {
		t.Fatalf("AuditEvents(acme, after first, 1) = %+v", page)
	}
	platform, err := st.AuditEvents(ctx, "", 0, 0)
	must(t, err)
	if len(platform) != 1 || platform[0].Action != "platform.start" {
		t.Fatalf("AuditEvents(\"\") = %+v, want only the platform-wide event", platform)
	}
}

// testConcurrentWriters has many goroutines write and read at once, as
// the platform's handlers do: every write must succeed (no "database is
// locked"), and the race detector watches the store's own state.
func testConcurrentWriters(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	const workers, each = 8, 15
	for _, err := range race(workers, func(w int) error {
		for i := range each {
			id := fmt.Sprintf("w%d-%d", w, i)
			if err := st.CreateUser(ctx, &store.User{Tenant: "acme", ID: id, UserName: id}); err != nil {
				return err
			}
			if err := st.CreateSession(ctx, &store.Session{Tenant: "acme", ID: id, UserID: id, ExpiresAt: t0.Add(time.Hour)}, &store.RefreshToken{Hash: id + "-0"}); err != nil {
				return err
			}
			if _, err := st.RotateRefreshToken(ctx, "acme", id+"-0", &store.RefreshToken{Hash: id + "-1"}, t0); err != nil {
				return err
			}
			if _, _, err := st.ListUsers(ctx, "acme", store.ListQuery{Count: 10}); err != nil {
				return err
			}
		}
		return nil
	}) {
		must(t, err)
	}
	_, total, err := st.ListUsers(ctx, "acme", store.ListQuery{})
	must(t, err)
	if total != workers*each {
		t.Fatalf("%d users, want %d", total, workers*each)
	}
}
