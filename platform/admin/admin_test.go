package admin_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigie/platform/admin"
	"vigie/platform/platformtest"
	"vigie/platform/store"
)

type client struct {
	t     *testing.T
	base  string
	token string
}

func (c *client) do(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(data, &out)
	if out == nil && len(data) > 0 && data[0] == '[' {
		var list []any
		json.Unmarshal(data, &list)
		out = map[string]any{"list": list}
	}
	return resp.StatusCode, out
}

func TestAdminAPI(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{})
	c := &client{t: t, base: p.BaseURL, token: p.AdminToken}

	// Authentication.
	for _, tok := range []string{"", "wrong", p.SCIMToken} {
		anon := &client{t: t, base: p.BaseURL, token: tok}
		if status, _ := anon.do("GET", "/api/v1/tenants", ""); status != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", tok, status)
		}
	}

	// Tenants.
	status, body := c.do("POST", "/api/v1/tenants", `{"id":"acme","name":"Acme Corp","settings":{"access_token_ttl":"10m"}}`)
	if status != http.StatusCreated || body["id"] != "acme" || body["settings"].(map[string]any)["access_token_ttl"] != "10m0s" {
		t.Fatalf("create tenant: %d %v", status, body)
	}
	for in, want := range map[string]int{
		`{"id":"acme"}`:                                   http.StatusConflict,
		`{"id":"Bad_Id"}`:                                 http.StatusBadRequest,
		`{"id":"x","settings":{"ttl":"1m"}}`:              http.StatusBadRequest,
		`{"id":"y","settings":{"access_token_ttl":"5h"}}`: http.StatusBadRequest,
		`{"id":"z","color":"red"}`:                        http.StatusBadRequest,
		`not json`:                                        http.StatusBadRequest,
	} {
		if status, body := c.do("POST", "/api/v1/tenants", in); status != want || body["error"] == "" {
			t.Errorf("create %s: %d %v, want %d", in, status, body, want)
		}
	}
	if status, body := c.do("GET", "/api/v1/tenants", ""); status != 200 || len(body["list"].([]any)) != 2 {
		t.Errorf("list tenants: %d %v", status, body)
	}
	if status, _ := c.do("GET", "/api/v1/tenants/nope", ""); status != 404 {
		t.Errorf("unknown tenant: %d", status)
	}
	if status, body := c.do("PATCH", "/api/v1/tenants/acme/settings", `{"jit_provisioning":true}`); status != 200 ||
		body["settings"].(map[string]any)["jit_provisioning"] != true || body["settings"].(map[string]any)["access_token_ttl"] != "10m0s" {
		t.Errorf("patch settings: %d %v", status, body)
	}
	if status, _ := c.do("PATCH", "/api/v1/tenants/acme/settings", `{"refresh_lifetime":"1s"}`); status != 400 {
		t.Errorf("bad settings: %d", status)
	}

	// IdP: by XML (the demo IdP's), and refusals.
	md, _ := p.IdP.Metadata()
	xmlBody, _ := json.Marshal(map[string]string{"metadata_xml": string(md)})
	if status, body := c.do("PUT", "/api/v1/tenants/acme/idp", string(xmlBody)); status != 200 || body["idp"] == nil {
		t.Errorf("put IdP: %d %v", status, body)
	}
	if status, body := c.do("PUT", "/api/v1/tenants/acme/idp", `{"metadata_url":"`+p.BaseURL+`/idp/metadata"}`); status != 200 ||
		body["idp"].(map[string]any)["metadata_url"] == "" {
		t.Errorf("put IdP by URL: %d %v", status, body)
	}
	for _, bad := range []string{`{}`, `{"metadata_xml":"<x/>"}`, `{"metadata_url":"ftp://x"}`, `{"metadata_url":"http://idp.example/metadata"}`, `{"metadata_xml":"a","metadata_url":"b"}`} {
		if status, _ := c.do("PUT", "/api/v1/tenants/acme/idp", bad); status != 400 {
			t.Errorf("put IdP %s: %d", bad, status)
		}
	}

	// Directory (read), revocation, keys, SCIM tokens, audit on the demo tenant.
	if status, body := c.do("GET", "/api/v1/tenants/demo/users", ""); status != 200 || body["total"].(float64) != 2 {
		t.Errorf("users: %d %v", status, body)
	}
	if status, body := c.do("GET", "/api/v1/tenants/demo/users/demo-alice", ""); status != 200 || body["groups"].([]any)[0] != "staff" {
		t.Errorf("user: %d %v", status, body)
	}
	if status, body := c.do("GET", "/api/v1/tenants/demo/groups", ""); status != 200 || body["total"].(float64) != 2 {
		t.Errorf("groups: %d %v", status, body)
	}
	tr := p.Login(t, "alice", "alice-demo-pw", "")
	if status, body := c.do("POST", "/api/v1/tenants/demo/users/demo-alice/revoke", ""); status != 200 || body["sessions_revoked"].(float64) != 1 {
		t.Errorf("revoke user: %d %v", status, body)
	}
	if _, status, _ := p.Refresh(tr.RefreshToken); status != 400 {
		t.Errorf("refresh after an admin revocation: %d", status)
	}
	if status, _ := c.do("POST", "/api/v1/tenants/demo/users/nobody/revoke", ""); status != 404 {
		t.Errorf("revoke unknown user: %d", status)
	}
	if status, _ := c.do("POST", "/api/v1/tenants/demo/sessions/nosuch/revoke", ""); status != 404 {
		t.Errorf("revoke unknown session: %d", status)
	}
	if status, body := c.do("POST", "/api/v1/tenants/demo/keys/rotate", `{"lead":"0s"}`); status != 200 || body["kid"] == "" {
		t.Errorf("rotate: %d %v", status, body)
	}
	if status, _ := c.do("POST", "/api/v1/tenants/demo/keys/rotate", `{"lead":"-1s"}`); status != 400 {
		t.Errorf("rotate with a negative lead: %d", status)
	}
	status, body = c.do("POST", "/api/v1/tenants/demo/scim-tokens", `{"name":"entra"}`)
	if status != 201 || body["token"] == "" {
		t.Fatalf("SCIM token: %d %v", status, body)
	}
	scim := &client{t: t, base: p.URL("/scim/v2"), token: body["token"].(string)}
	if status, _ := scim.do("GET", "/Users", ""); status != 200 {
		t.Errorf("new SCIM token refused: %d", status)
	}
	if status, _ := c.do("DELETE", "/api/v1/tenants/demo/scim-tokens/entra", ""); status != 204 {
		t.Errorf("delete SCIM token: %d", status)
	}
	if status, _ := scim.do("GET", "/Users", ""); status != 401 {
		t.Errorf("deleted SCIM token accepted: %d", status)
	}
	status, body = c.do("GET", "/api/v1/tenants/demo/audit?limit=1000", "")
	var actions []string
	for _, e := range body["events"].([]any) {
		actions = append(actions, e.(map[string]any)["action"].(string))
	}
	all := strings.Join(actions, " ")
	for _, want := range []string{"login.success", "session.start", "user.revoke", "keys.rotate", "scim_token.create", "scim_token.delete"} {
		if !strings.Contains(all, want) {
			t.Errorf("audit lacks %s: %s", want, all)
		}
	}
}

// TestAccessLogAPI: the access log as a security team reads it through the
// admin API: by user, by host, by time range (from inclusive, to
// exclusive) and together, paged with after, and exported as JSON lines;
// another tenant's records never show; bad parameters are a 400 that says
// what to send.
func TestAccessLogAPI(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{})
	c := &client{t: t, base: p.BaseURL, token: p.AdminToken}
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	rec := func(min int, tenant, user, host string) *store.AccessRecord {
		return &store.AccessRecord{Tenant: tenant, At: at(min), UserID: user, Device: "dev-" + user, Method: "GET", Host: host,
			Path: "/" + strconv.Itoa(min), Status: 200, BytesIn: 10, BytesOut: 100, Duration: time.Millisecond, Decision: "allow", Rule: "default"}
	}
	recs := []*store.AccessRecord{
		rec(0, "demo", "demo-alice", "a.example"),
		rec(1, "demo", "demo-bob", "a.example"),
		rec(2, "demo", "demo-alice", "b.example"),
		rec(3, "demo", "demo-alice", "a.example"),
		rec(4, "acme", "demo-alice", "a.example"), // another tenant's
	}
	recs[3].Decision, recs[3].Status, recs[3].Rule, recs[3].Ref = "block", 403, "no-a", "0123456789ab"
	if err := p.Server.Store.AppendAccess(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	paths := func(query string) []string {
		t.Helper()
		status, body := c.do("GET", "/api/v1/tenants/demo/access?"+query, "")
		if status != http.StatusOK {
			t.Fatalf("access?%s: %d %v", query, status, body)
		}
		out := []string{}
		for _, r := range body["records"].([]any) {
			out = append(out, r.(map[string]any)["path"].(string))
		}
		return out
	}
	ts := func(min int) string { return url.QueryEscape(at(min).Format(time.RFC3339)) }
	for query, want := range map[string][]string{
		"":                               {"/0", "/1", "/2", "/3"},
		"user=demo-alice":                {"/0", "/2", "/3"},
		"host=a.example":                 {"/0", "/1", "/3"},
		"from=" + ts(1) + "&to=" + ts(3): {"/1", "/2"},
		"from=" + ts(3):                  {"/3"},
		"to=" + ts(1):                    {"/0"},
		"user=demo-alice&host=a.example&from=" + ts(1): {"/3"},
		"user=demo-bob&host=b.example":                 {},
		"limit=2":                                      {"/0", "/1"},
		"after=" + strconv.FormatInt(recs[1].Seq, 10):  {"/2", "/3"},
	} {
		if got := paths(query); !slices.Equal(got, want) {
			t.Errorf("access?%s: %v, want %v", query, got, want)
		}
	}

	// Export: one JSON object per line, every field.
	resp, err := c.get("/api/v1/tenants/demo/access?user=demo-alice&format=jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/jsonl" {
		t.Fatalf("export: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var lines []admin.AccessView
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		var v admin.AccessView
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		lines = append(lines, v)
	}
	want := admin.AccessView{Seq: recs[3].Seq, At: at(3), User: "demo-alice", Device: "dev-demo-alice", Method: "GET", Host: "a.example", Path: "/3",
		Status: 403, BytesIn: 10, BytesOut: 100, DurationMS: 1, Decision: "block", Rule: "no-a", Ref: "0123456789ab"}
	if len(lines) != 3 || lines[0].Path != "/0" || lines[1].Path != "/2" || !lines[2].At.Equal(want.At) {
		t.Fatalf("export: %+v", lines)
	}
	if lines[2].At = want.At; lines[2] != want {
		t.Errorf("exported record:\n%+v, want\n%+v", lines[2], want)
	}

	for _, bad := range []string{"from=yesterday", "to=2026-11-23", "after=-1", "after=x", "limit=0", "limit=10001"} {
		if status, body := c.do("GET", "/api/v1/tenants/demo/access?"+bad, ""); status != http.StatusBadRequest || body["error"] == "" {
			t.Errorf("access?%s: %d %v, want 400 with what to send", bad, status, body)
		}
	}
}

func (c *client) get(path string) (*http.Response, error) {
	req, err := http.NewRequest("GET", c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	return http.DefaultClient.Do(req)
}
