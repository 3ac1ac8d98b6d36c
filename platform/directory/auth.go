package directory

import (
	"context"
	"errors"
	"net/http"

	"vigie/platform/secret"
	"vigie/platform/store"
)

type tokenNameKey struct{}

// TokenName returns the name of the SCIM token that authenticated the
// request of ctx, or "" outside RequireToken.
func TokenName(ctx context.Context) string {
	name, _ := ctx.Value(tokenNameKey{}).(string)
	return name
}

// RequireToken lets a request through to next only with a bearer token of
// tenant: the token's SHA-256 must be a SCIM token of that tenant in the
// store. The comparison is the store's lookup by hash, so no token is ever
// compared byte by byte here, and none is logged. Failures answer 401 in
// the SCIM error schema. The token's name is in the request context
// (TokenName) for the audit log.
func (s *Server) RequireToken(tenant string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := secret.Bearer(r.Header.Get("Authorization"))
		if ok && !validTenant(tenant) {
			// No token can belong to it; do not send it to the store.
			s.writeError(w, r, &Error{Status: http.StatusUnauthorized, Detail: "unknown tenant"})
			return
		}
		if !ok {
			s.writeError(w, r, &Error{Status: http.StatusUnauthorized,
				Detail: "missing bearer token: send Authorization: Bearer <the tenant's SCIM token>"})
			return
		}
		name, err := s.st.SCIMTokenName(r.Context(), tenant, secret.HashToken(token))
		if errors.Is(err, store.ErrNotFound) {
			s.log.DebugContext(r.Context(), "scim: unknown bearer token", "tenant", tenant, "remote", r.RemoteAddr)
			s.writeError(w, r, &Error{Status: http.StatusUnauthorized,
				Detail: "the bearer token is not a SCIM token of this tenant (revoked, or for another tenant)"})
			return
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenNameKey{}, name)))
	})
}
