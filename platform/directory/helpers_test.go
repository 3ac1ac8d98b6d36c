package directory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vigie/platform/secret"
	"vigie/platform/store"
	"vigie/platform/store/storetest"
)

// The tests run against the real stores: SQLite always, PostgreSQL where
// it is installed (storetest skips otherwise).
var stores = []struct {
	name string
	open func(testing.TB) store.Store
}{
	{"sqlite", storetest.SQLite},
	{"postgres", storetest.Postgres},
}

// eachStore runs f once per store, in parallel.
func eachStore(t *testing.T, f func(t *testing.T, h *harness)) {
	t.Helper()
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			f(t, newHarness(t, s.open(t), nil))
		})
	}
}

const (
	testTenant  = "acme"
	otherTenant = "globex"
	tokenName   = "entra"
)

// epoch is the test clock's start: in the past, so that the store's own
// clock (UpdateUser stamps UpdatedAt itself) is always later.
var epoch = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is the injected Options.Now: one second later at every call, so
// that creation times are distinct and ordered.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// harness is the platform's mount of the directory on a real loopback
// HTTP server, with two tenants and a SCIM token for each.
type harness struct {
	t          testing.TB
	st         store.Store
	srv        *httptest.Server
	dir        *Server
	clock      *clock
	token      string // acme's
	otherToken string // globex's
}

func newHarness(t testing.TB, st store.Store, configure func(*Options)) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, st: st, clock: &clock{t: epoch}, token: secret.NewToken(), otherToken: secret.NewToken()}
	for _, tn := range []struct{ id, token string }{{testTenant, h.token}, {otherTenant, h.otherToken}} {
		if err := st.CreateTenant(ctx, &store.Tenant{ID: tn.id, Name: tn.id, CreatedAt: epoch, UpdatedAt: epoch}); err != nil {
			t.Fatal(err)
		}
		if err := st.AddSCIMToken(ctx, tn.id, tokenName, secret.HashToken(tn.token), epoch); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	// As the platform mounts it.
	mux.HandleFunc("/t/{tenant}/scim/v2/", func(w http.ResponseWriter, r *http.Request) {
		h.dir.Handler(r.PathValue("tenant")).ServeHTTP(w, r)
	})
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	opts := Options{Now: h.clock.Now, BaseURL: h.srv.URL, MaxResults: 10}
	if configure != nil {
		configure(&opts)
	}
	h.dir = New(st, opts)
	return h
}

// with returns the harness reporting to t (for subtests and fuzzing).
func (h *harness) with(t testing.TB) *harness {
	c := *h
	c.t = t
	return &c
}

// base is the SCIM base URL of tenant acme.
func (h *harness) base() string { return h.srv.URL + BasePath(testTenant) }

type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// do sends a request to acme's SCIM base (path is relative to it) with
// acme's token. hdr are name, value pairs; an empty value removes the
// header.
func (h *harness) do(method, path, body string, hdr ...string) *response {
	h.t.Helper()
	return h.doURL(method, h.base()+path, body, hdr...)
}

func (h *harness) doURL(method, u, body string, hdr ...string) *response {
	h.t.Helper()
	r, err := h.send(method, u, body, hdr...)
	if err != nil {
		h.t.Fatal(err)
	}
	if r.body != nil {
		if ct := r.header.Get("Content-Type"); ct != mediaSCIM {
			h.t.Errorf("%s %s: Content-Type %q, want %q", method, u, ct, mediaSCIM)
		}
	}
	return r
}

// send is doURL for any goroutine: it reports failures as errors.
func (h *harness) send(method, u, body string, hdr ...string) (*response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	r := &response{status: res.StatusCode, header: res.Header, raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&r.body); err != nil {
			return nil, fmt.Errorf("%s %s: %d: body is not a JSON object: %v\n%s", method, u, res.StatusCode, err, raw)
		}
	}
	return r, nil
}

// must checks the status and returns the response.
func (h *harness) must(status int, r *response) *response {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("status %d, want %d\n%s", r.status, status, r.raw)
	}
	return r
}

// mustError checks a SCIM error response (RFC 7644 §3.12).
func (h *harness) mustError(status int, scimType string, r *response) {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("status %d, want %d\n%s", r.status, status, r.raw)
	}
	checkErrorBody(h.t, r)
	if got, _ := r.body["scimType"].(string); got != scimType {
		h.t.Errorf("scimType %q, want %q\n%s", got, scimType, r.raw)
	}
}

func checkErrorBody(t testing.TB, r *response) {
	t.Helper()
	if r.body == nil {
		t.Fatalf("error %d without a body", r.status)
	}
	if s := field(r.body, "schemas.0"); s != schemaError {
		t.Errorf("schemas %v, want [%s]", r.body["schemas"], schemaError)
	}
	if s := field(r.body, "status"); s != strconv.Itoa(r.status) {
		t.Errorf("status field %#v, want the string %q", s, strconv.Itoa(r.status))
	}
	if d, _ := r.body["detail"].(string); d == "" {
		t.Errorf("no detail: %s", r.raw)
	}
}

// field walks a decoded JSON value along a dotted path; numbers index
// lists. Missing gives nil.
func field(v any, path string) any {
	for _, p := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

func asString(v any) string { s, _ := v.(string); return s }

func num(t testing.TB, v any) int {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%#v is not a JSON number", v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return int(i)
}

// filterQuery is ?filter=… for f.
func filterQuery(f string) string { return "?filter=" + url.QueryEscape(f) }

// createUser POSTs a user and returns its id.
func (h *harness) createUser(body string) string {
	h.t.Helper()
	r := h.must(http.StatusCreated, h.do("POST", "/Users", body))
	return asString(r.body["id"])
}

func (h *harness) createGroup(body string) string {
	h.t.Helper()
	r := h.must(http.StatusCreated, h.do("POST", "/Groups", body))
	return asString(r.body["id"])
}

func userBody(userName string) string {
	return `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":` + strconv.Quote(userName) + `,"active":true}`
}

// ids returns the ids of a list response's resources.
func ids(r *response) []string {
	var out []string
	list, _ := r.body["Resources"].([]any)
	for _, res := range list {
		out = append(out, asString(field(res, "id")))
	}
	return out
}

// auditActions returns the actions of tenant acme's audit log, in order.
func (h *harness) auditActions() []string {
	h.t.Helper()
	evs, err := h.st.AuditEvents(context.Background(), testTenant, 0, 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if e.Actor != "scim:"+tokenName {
			h.t.Errorf("audit actor %q, want %q", e.Actor, "scim:"+tokenName)
		}
		out = append(out, e.Action)
	}
	return out
}
