package directory

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"vigie/platform/secret"
	"vigie/platform/store"
)

// login gives the user a session with a refresh token, as the token
// service would after a SAML login.
func (h *harness) login(userID, sessionID string) {
	h.t.Helper()
	now := h.clock.Now()
	s := &store.Session{Tenant: testTenant, ID: sessionID, UserID: userID, Device: "dev-1",
		AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(7 * 24 * time.Hour)}
	rt := &store.RefreshToken{Tenant: testTenant, Hash: secret.HashToken(sessionID), SessionID: sessionID,
		CreatedAt: now, ExpiresAt: s.ExpiresAt}
	if err := h.st.CreateSession(context.Background(), s, rt); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) revoked(sessionID string) bool {
	h.t.Helper()
	s, err := h.st.Session(context.Background(), testTenant, sessionID)
	if err != nil {
		h.t.Fatal(err)
	}
	return !s.RevokedAt.IsZero()
}

// userRevocations returns the RevokeUser events of the feed after seq.
func (h *harness) userRevocations(after int64) []*store.Revocation {
	h.t.Helper()
	revs, err := h.st.Revocations(context.Background(), after, 100)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*store.Revocation
	for _, r := range revs {
		if r.Kind == store.RevokeUser {
			out = append(out, r)
		}
	}
	return out
}

func (h *harness) lastRevocation() int64 {
	h.t.Helper()
	seq, err := h.st.LastRevocation(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return seq
}

func TestDeactivationRevokesSessions(t *testing.T) {
	eachStore(t, func(t *testing.T, h *harness) {
		for _, tc := range []struct {
			name, method, body, action string
		}{
			{"entra PATCH", "PATCH", patchBody(`{"op":"Replace","path":"active","value":"False"}`), "scim.user.deactivate"},
			{"okta PATCH", "PATCH", patchBody(`{"op":"replace","value":{"active":false}}`), "scim.user.deactivate"},
			{"PUT", "PUT", `{"userName":"USER@example.com","active":false}`, "scim.user.deactivate"},
			{"DELETE", "DELETE", "", "scim.user.delete"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := h.with(t)
				id := h.createUser(userBody("user@example.com"))
				other := h.createUser(userBody("bystander@example.com"))
				h.login(id, "sess-"+id)
				h.login(other, "sess-"+other)
				seq := h.lastRevocation()

				status := http.StatusOK
				if tc.method == "DELETE" {
					status = http.StatusNoContent
				}
				h.must(status, h.do(tc.method, "/Users/"+id, tc.body))

				if !h.revoked("sess-" + id) {
					t.Error("the user's session is not revoked")
				}
				if h.revoked("sess-" + other) {
					t.Error("another user's session was revoked")
				}
				revs := h.userRevocations(seq)
				if len(revs) == 0 || revs[0].Subject != id || revs[0].Tenant != testTenant || revs[0].Reason == "" {
					t.Errorf("revocation feed after %d: %+v", seq, revs)
				}

				evs, err := h.st.AuditEvents(context.Background(), testTenant, 0, 1000)
				if err != nil {
					t.Fatal(err)
				}
				last := evs[len(evs)-1]
				if last.Action != tc.action || last.Actor != "scim:"+tokenName || last.Target != id {
					t.Errorf("last audit event %+v, want %s by scim:%s on %s", last, tc.action, tokenName, id)
				}
				var detail map[string]any
				if err := json.Unmarshal(last.Detail, &detail); err != nil || detail["userName"] == nil {
					t.Errorf("audit detail %s: %v", last.Detail, err)
				}
				if tc.method != "DELETE" {
					if n, _ := detail["revokedSessions"].(float64); n != 1 {
						t.Errorf("audit detail %s: want revokedSessions 1", last.Detail)
					}
					h.must(http.StatusNoContent, h.do("DELETE", "/Users/"+id, ""))
				}
				h.must(http.StatusNoContent, h.do("DELETE", "/Users/"+other, ""))
			})
		}

		t.Run("told again, revoked again", func(t *testing.T) {
			// A revocation that failed after the user was stored inactive
			// must happen when the IdP retries.
			h := h.with(t)
			id := h.createUser(userBody("again@example.com"))
			h.must(http.StatusOK, h.do("PATCH", "/Users/"+id, patchBody(`{"op":"replace","path":"active","value":false}`)))
			seq := h.lastRevocation()
			r := h.must(http.StatusOK, h.do("PATCH", "/Users/"+id, patchBody(`{"op":"replace","path":"active","value":false}`)))
			if field(r.body, "meta.version") != `W/"2"` {
				t.Errorf("a PATCH that changes nothing changed the version: %v", field(r.body, "meta.version"))
			}
			if revs := h.userRevocations(seq); len(revs) != 1 || revs[0].Subject != id {
				t.Errorf("repeated deactivation: feed %+v", revs)
			}
			// Other changes of an inactive user do not revoke.
			seq = h.lastRevocation()
			h.must(http.StatusOK, h.do("PATCH", "/Users/"+id, patchBody(`{"op":"replace","path":"title","value":"Former"}`)))
			if revs := h.userRevocations(seq); len(revs) != 0 {
				t.Errorf("an unrelated change revoked: %+v", revs)
			}
			acts := h.auditActions()
			if got := acts[len(acts)-2:]; got[0] != "scim.user.revoke" || got[1] != "scim.user.patch" {
				t.Errorf("audit ends with %v", got)
			}
		})

		t.Run("creation and other changes do not revoke", func(t *testing.T) {
			h := h.with(t)
			seq := h.lastRevocation()
			id := h.createUser(`{"userName":"inactive@example.com","active":false}`)
			h.must(http.StatusOK, h.do("PATCH", "/Users/"+id, patchBody(`{"op":"replace","path":"active","value":true}`)))
			h.must(http.StatusOK, h.do("PUT", "/Users/"+id, `{"userName":"inactive@example.com","displayName":"x"}`))
			if revs := h.userRevocations(seq); len(revs) != 0 {
				t.Errorf("revocations: %+v", revs)
			}
		})
	})
}

func TestETags(t *testing.T) {
	eachStore(t, func(t *testing.T, h *harness) {
		r := h.must(http.StatusCreated, h.do("POST", "/Groups", `{"displayName":"Tagged"}`))
		id := asString(r.body["id"])
		if r.header.Get("ETag") != `W/"1"` {
			t.Fatalf("ETag %q", r.header.Get("ETag"))
		}
		r = h.do("GET", "/Groups/"+id, "", "If-None-Match", `W/"1"`)
		if r.status != http.StatusNotModified {
			t.Errorf("If-None-Match current: %d", r.status)
		}
		h.must(http.StatusOK, h.do("GET", "/Groups/"+id, "", "If-None-Match", `W/"7"`))

		r = h.must(http.StatusOK, h.do("PATCH", "/Groups/"+id, patchBody(`{"op":"replace","path":"displayName","value":"Tagged 2"}`), "If-Match", `W/"1"`))
		if r.header.Get("ETag") != `W/"2"` || field(r.body, "meta.version") != `W/"2"` {
			t.Errorf("after PATCH: ETag %q, meta.version %v", r.header.Get("ETag"), field(r.body, "meta.version"))
		}
		h.mustError(http.StatusPreconditionFailed, "", h.do("PATCH", "/Groups/"+id, patchBody(`{"op":"replace","path":"displayName","value":"Stale"}`), "If-Match", `W/"1"`))
		h.mustError(http.StatusPreconditionFailed, "", h.do("PUT", "/Groups/"+id, `{"displayName":"Stale"}`, "If-Match", `"1", W/"3"`))
		h.mustError(http.StatusPreconditionFailed, "", h.do("DELETE", "/Groups/"+id, "", "If-Match", `W/"1"`))
		h.must(http.StatusOK, h.do("PUT", "/Groups/"+id, `{"displayName":"Tagged 3"}`, "If-Match", `*`))
		h.must(http.StatusNoContent, h.do("DELETE", "/Groups/"+id, "", "If-Match", `W/"3"`))
	})
}

func TestEtagMatches(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{`W/"4"`, true}, {`"4"`, true}, {`*`, true}, {`W/"3", W/"4"`, true},
		{`W/"40"`, false}, {`4`, false}, {`W/4`, false}, {`"`, false}, {``, false},
	} {
		if got := etagMatches(tc.header, 4); got != tc.want {
			t.Errorf("etagMatches(%q, 4) = %v", tc.header, got)
		}
	}
}
