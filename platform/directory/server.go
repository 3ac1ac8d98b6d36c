package directory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"vigie/platform/store"
)

// Media types: requests may use either, responses use the SCIM one.
const (
	mediaSCIM = "application/scim+json"
	mediaJSON = "application/json"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives internal errors (never tokens, never request bodies).
	// Default: discard.
	Logger *slog.Logger
	// BaseURL is the platform's external origin, for example
	// "https://vigie.example.com", without a trailing slash. meta.location
	// and Location headers are BaseURL + "/t/{tenant}/scim/v2/…". Default
	// "": locations are absolute paths.
	BaseURL string
	// MaxResults is the most resources one list response holds, and the page
	// size when the client gives no count. Default 100.
	MaxResults int
	// MaxBodyBytes bounds a request body. Default 1 MiB.
	MaxBodyBytes int64
	// MaxScan bounds how many resources a filter that the store cannot
	// answer may read for evaluation in Go; beyond it the list fails with
	// 400 tooMany. Default 50000.
	MaxScan int
}

const (
	defaultMaxResults   = 100
	defaultMaxBodyBytes = 1 << 20
	defaultMaxScan      = 50000
	// maxFilterBytes bounds a filter, attribute list or path before
	// parsing: real ones are a few hundred bytes, and parsing time grows
	// faster than linearly with nesting.
	maxFilterBytes = 4096
	// maxMemberChecks is how many new members of one write are looked up
	// one by one, for an error that names the unknown one.
	maxMemberChecks = 50
	// maxOperations bounds the operations of one PATCH.
	maxOperations = 1000
	// staleRetries is how often a read-modify-write without If-Match is
	// retried when another writer got in between (Entra ID sends concurrent
	// PATCHes to one group). Each round lets at least one writer through,
	// so this covers bursts of that many writers to one resource.
	staleRetries = 20
)

// Server serves the SCIM 2.0 API of every tenant from one store.
type Server struct {
	st   store.Store
	opts Options
	now  func() time.Time
	log  *slog.Logger
}

// New returns a Server on st. It does not start anything: mount Handler.
func New(st store.Store, opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxResults <= 0 {
		opts.MaxResults = defaultMaxResults
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = defaultMaxBodyBytes
	}
	if opts.MaxScan <= 0 {
		opts.MaxScan = defaultMaxScan
	}
	opts.BaseURL = strings.TrimSuffix(opts.BaseURL, "/")
	return &Server{st: st, opts: opts, now: opts.Now, log: opts.Logger}
}

// BasePath is the path at which Handler(tenant) serves: "/t/{tenant}/scim/v2".
func BasePath(tenant string) string { return "/t/" + tenant + "/scim/v2" }

// Handler serves one tenant's SCIM base, BasePath(tenant), behind bearer
// token authentication (RequireToken). Request paths keep the base: the
// platform mounts it, without stripping, as
//
//	mux.HandleFunc("/t/{tenant}/scim/v2/", func(w http.ResponseWriter, r *http.Request) {
//		scim.Handler(r.PathValue("tenant")).ServeHTTP(w, r)
//	})
//
// The tenant is fixed before authentication, and every store call is
// scoped by it, so one tenant's token can never reach another's directory.
// Handler is cheap; calling it per request is fine.
func (s *Server) Handler(tenant string) http.Handler {
	return s.RequireToken(tenant, &tenantHandler{s: s, tenant: tenant, base: BasePath(tenant)})
}

// tenantHandler routes the requests of one tenant's SCIM base.
type tenantHandler struct {
	s      *Server
	tenant string
	base   string
}

func (h *tenantHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	rest, ok := strings.CutPrefix(r.URL.Path, h.base)
	if !ok || (rest != "" && rest[0] != '/') {
		s.writeError(w, r, &Error{Status: http.StatusNotFound, Detail: "not a SCIM endpoint of this tenant"})
		return
	}
	rest = strings.Trim(rest, "/")
	endpoint, id, _ := strings.Cut(rest, "/")
	req := &request{s: s, tenant: h.tenant, base: s.opts.BaseURL + h.base, r: r, w: w}
	var err error
	switch {
	case strings.EqualFold(endpoint, "Users"):
		err = req.resource(userType, id)
	case strings.EqualFold(endpoint, "Groups"):
		err = req.resource(groupType, id)
	case strings.EqualFold(endpoint, "ServiceProviderConfig") && id == "":
		err = req.onlyGET(req.serviceProviderConfig)
	case strings.EqualFold(endpoint, "ResourceTypes"):
		err = req.onlyGET(func() error { return req.resourceTypes(id) })
	case strings.EqualFold(endpoint, "Schemas"):
		err = req.onlyGET(func() error { return req.schemas(id) })
	case strings.EqualFold(endpoint, "Bulk"), strings.EqualFold(endpoint, "Me"):
		err = &Error{Status: http.StatusNotImplemented, Detail: "/" + endpoint + " is not supported"}
	default:
		err = &Error{Status: http.StatusNotFound, Detail: fmt.Sprintf("no SCIM endpoint %q", "/"+rest)}
	}
	if err != nil {
		s.writeError(w, r, err)
	}
}

// request is one request in progress, with what every handler needs.
type request struct {
	s      *Server
	tenant string
	base   string // the tenant's SCIM base URL (or path), no trailing slash
	r      *http.Request
	w      http.ResponseWriter
}

func (q *request) ctx() context.Context { return q.r.Context() }

func (q *request) onlyGET(f func() error) error {
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		q.w.Header().Set("Allow", "GET")
		return &Error{Status: http.StatusMethodNotAllowed, Detail: q.r.Method + " is not allowed here; use GET"}
	}
	return f()
}

// resource dispatches /Users and /Groups requests by method.
func (q *request) resource(rt *resourceType, id string) error {
	if strings.Contains(id, "/") {
		return &Error{Status: http.StatusNotFound, Detail: fmt.Sprintf("no SCIM endpoint %q", q.r.URL.Path)}
	}
	if id != "" && id != ".search" && !plausibleID(id) {
		// Not an id we could have issued; and PostgreSQL would refuse it.
		return notFound(rt.Name, id)
	}
	if id == "" {
		switch q.r.Method {
		case http.MethodGet, http.MethodHead:
			return q.list(rt)
		case http.MethodPost:
			return q.create(rt)
		}
		q.w.Header().Set("Allow", "GET, POST")
		return &Error{Status: http.StatusMethodNotAllowed, Detail: q.r.Method + " is not allowed on " + rt.Endpoint}
	}
	if id == ".search" {
		return &Error{Status: http.StatusNotImplemented, Detail: "POST .search is not supported; use GET with filter"}
	}
	switch q.r.Method {
	case http.MethodGet, http.MethodHead:
		return q.get(rt, id)
	case http.MethodPut:
		return q.replace(rt, id)
	case http.MethodPatch:
		return q.patch(rt, id)
	case http.MethodDelete:
		return q.delete(rt, id)
	}
	q.w.Header().Set("Allow", "GET, PUT, PATCH, DELETE")
	return &Error{Status: http.StatusMethodNotAllowed, Detail: q.r.Method + " is not allowed on " + rt.Endpoint + "/{id}"}
}

// body reads a JSON request body within the size limit.
func (q *request) body() ([]byte, error) {
	if ct := q.r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != mediaSCIM && mt != mediaJSON) {
			return nil, &Error{Status: http.StatusUnsupportedMediaType,
				Detail: "send the body as application/scim+json or application/json"}
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(q.w, q.r.Body, q.s.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge,
				Detail: fmt.Sprintf("the body is larger than %d bytes", q.s.opts.MaxBodyBytes)}
		}
		return nil, badRequest(scimInvalidSyntax, "the body could not be read")
	}
	return b, nil
}

// location is the URL of a resource of type rt.
func (q *request) location(rt *resourceType, id string) string {
	return q.base + rt.Endpoint + "/" + id
}

// plausibleID reports whether id could name a stored resource: UTF-8
// without NUL, of a sane length. Ids are UUIDs we issue, but other parts of
// the platform may create users too, so the shape is not checked further.
func plausibleID(id string) bool {
	return len(id) <= 256 && utf8.ValidString(id) && !strings.ContainsRune(id, 0)
}

// validTenant reports whether t is a tenant ID as the store defines it:
// [a-z0-9-], 1 to 63 characters.
func validTenant(t string) bool {
	if len(t) == 0 || len(t) > 63 {
		return false
	}
	for _, c := range []byte(t) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// newID returns a random (version 4) UUID, the id of a new resource.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
