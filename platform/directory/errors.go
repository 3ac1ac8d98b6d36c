package directory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"vigie/platform/store"
)

// SCIM error types (RFC 7644 §3.12), the "scimType" of a 400 or 409.
const (
	scimInvalidFilter = "invalidFilter"
	scimTooMany       = "tooMany"
	scimUniqueness    = "uniqueness"
	scimMutability    = "mutability"
	scimInvalidSyntax = "invalidSyntax"
	scimInvalidPath   = "invalidPath"
	scimNoTarget      = "noTarget"
	scimInvalidValue  = "invalidValue"
)

// Error is a failure that the client caused or can act on. Handlers return
// it; writeError renders it in the SCIM error schema. Any other error is
// the server's own and becomes a 500 without detail.
type Error struct {
	Status   int    // HTTP status, for example 400
	ScimType string // RFC 7644 §3.12 keyword; empty when none applies
	Detail   string // a sentence for the person reading the IdP's provisioning log
}

func (e *Error) Error() string {
	if e.ScimType != "" {
		return fmt.Sprintf("directory: %d %s: %s", e.Status, e.ScimType, e.Detail)
	}
	return fmt.Sprintf("directory: %d: %s", e.Status, e.Detail)
}

func badRequest(scimType, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, ScimType: scimType, Detail: fmt.Sprintf(format, args...)}
}

func notFound(kind, id string) *Error {
	return &Error{Status: http.StatusNotFound, Detail: fmt.Sprintf("%s %q not found", kind, id)}
}

// errorBody is the SCIM error response. Status is a string, as RFC 7644
// §3.12 requires; Okta's and Microsoft's validators check that.
type errorBody struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail"`
}

// asError is the one place that maps errors to HTTP statuses. Store
// sentinels the client can cause become their SCIM errors; everything else
// is internal (500) and its text stays in our log.
func asError(err error) (e *Error, internal bool) {
	if errors.As(err, &e) {
		return e, false
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Detail: "resource not found"}, false
	case errors.Is(err, store.ErrConflict):
		return &Error{Status: http.StatusConflict, ScimType: scimUniqueness,
			Detail: "the userName or displayName is already taken in this tenant"}, false
	case errors.Is(err, store.ErrStale):
		return &Error{Status: http.StatusPreconditionFailed,
			Detail: "the resource changed since it was read; read it again and retry"}, false
	}
	return &Error{Status: http.StatusInternalServerError,
		Detail: "internal error; the request may be retried"}, true
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e, internal := asError(err)
	if internal {
		s.log.ErrorContext(r.Context(), "scim: request failed",
			"method", r.Method, "path", r.URL.Path, "err", err)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scim"`)
	}
	writeJSON(w, e.Status, errorBody{
		Schemas:  []string{schemaError},
		Status:   strconv.Itoa(e.Status),
		ScimType: e.ScimType,
		Detail:   e.Detail,
	})
}

// writeJSON writes v as the response body with the SCIM media type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		// Only our own values reach here, and they all marshal.
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", mediaSCIM)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// marshal is json.Marshal without HTML escaping, so that "<" in a display
// name reads as itself in provisioning logs.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
