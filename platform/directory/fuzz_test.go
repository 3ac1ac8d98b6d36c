package directory

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// checkClientError fails unless err is nil or a client error (4xx) that
// writeError renders as such.
func checkClientError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var e *Error
	if !errors.As(err, &e) || e.Status < 400 || e.Status > 499 || e.Detail == "" {
		t.Fatalf("not a client error: %#v", err)
	}
}

// FuzzFilter parses random filters for both resource types and evaluates
// those that parse: no panic, and every refusal is a 400.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		`userName eq "bjensen"`, `name.familyName co "O'Malley"`, `userName sw "J"`, `title pr`,
		`meta.lastModified gt "2011-05-13T04:42:34Z"`, `meta.lastModified ge "2011-05-13T04:42:34Z"`,
		`title pr and userType eq "Employee"`, `title pr or userType eq "Intern"`,
		`schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`,
		`userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`,
		`userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")`,
		`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`,
		`members[value eq "2819c223"]`, `active eq true`, `x eq 1.5e3`, `userName eq "a\"b\\c\u00E9"`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m"`, `((((a pr))))`, `not(a pr)`,
	} {
		f.Add(s)
	}
	doc := mustDoc(f, filterDoc)
	group := mustDoc(f, `{"id":"g","displayName":"G","members":[{"value":"u1","type":"User"}],"meta":{"created":"2024-01-01T00:00:00Z"}}`)
	f.Fuzz(func(t *testing.T, raw string) {
		for _, tc := range []struct {
			rt  *resourceType
			doc map[string]any
		}{{userType, doc}, {groupType, group}} {
			expr, err := parseFilter(tc.rt, raw)
			checkClientError(t, err)
			if err == nil {
				matches(scope{rt: tc.rt}, expr, tc.doc)
				pushdown(tc.rt, expr)
				idEq(expr)
			}
		}
		if _, err := parseProjection(userType, raw, raw); err != nil {
			checkClientError(t, err)
		}
	})
}

// FuzzPatch applies random PATCH bodies to a user and a group: no panic,
// every refusal is a 4xx, and what succeeds normalises to a document that
// can be stored and normalised again to itself.
func FuzzPatch(f *testing.F) {
	for _, s := range []string{
		patchBody(`{"op":"replace","value":{"active":false}}`),
		patchBody(`{"op":"Replace","path":"active","value":"False"}`),
		patchBody(`{"op":"Replace","path":"emails[type eq \"work\"].value","value":"a@b.c"},{"op":"Replace","path":"name.familyName","value":"X"}`),
		patchBody(`{"op":"add","path":"members","value":[{"value":"u3","display":"x"}]}`),
		patchBody(`{"op":"Add","path":"members","value":[{"$ref":null,"value":"u3"}]}`),
		patchBody(`{"op":"remove","path":"members[value eq \"u1\"]"}`),
		patchBody(`{"op":"Remove","path":"members","value":[{"value":"u1"}]}`),
		patchBody(`{"op":"replace","path":"members","value":[]}`),
		patchBody(`{"op":"replace","value":{"id":"id-1","displayName":"New"}}`),
		patchBody(`{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"m1"}`),
		patchBody(`{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","value":{"department":"x"}}`),
		patchBody(`{"op":"replace","path":"title","value":null},{"op":"remove","path":"emails[type eq \"work\"].value"}`),
		patchBody(`{"op":"replace","path":"addresses[type eq \"work\" and primary eq true].locality","value":"Paris"}`),
		`{"Operations":[{"op":"add","value":{"emails[type eq \"home\"].value":"h@x","name.givenName":""}}]}`,
		`{"Operations":[{"op":"remove","path":"id"}]}`, `{"Operations":[{}]}`, `{}`, `[]`, `null`, ``,
	} {
		f.Add(s)
	}
	user, err := userType.normalize(mustDoc(f, baseUser))
	if err != nil {
		f.Fatal(err)
	}
	group, err := groupType.normalize(mustDoc(f, `{"displayName":"G","members":[{"value":"u1"},{"value":"u2"}]}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		ops, err := parsePatch([]byte(body))
		checkClientError(t, err)
		if err != nil {
			return
		}
		for _, tc := range []struct {
			rt  *resourceType
			doc map[string]any
		}{{userType, user}, {groupType, group}} {
			before := normalJSON(tc.doc)
			out, _, err := applyPatch(tc.rt, "id-1", tc.doc, ops)
			checkClientError(t, err)
			if normalJSON(tc.doc) != before {
				t.Fatal("applyPatch modified its input")
			}
			if err != nil {
				continue
			}
			out, err = tc.rt.normalize(out)
			checkClientError(t, err)
			if err != nil {
				continue
			}
			again, err := tc.rt.normalize(deepCopy(out).(map[string]any))
			if err != nil || normalJSON(again) != normalJSON(out) {
				t.Fatalf("normalize is not idempotent: %v\n%s\n%s", err, normalJSON(out), normalJSON(again))
			}
			if tc.rt == groupType {
				_, err := memberIDs(out)
				checkClientError(t, err)
			}
		}
	})
}

func normalJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// FuzzRequest sends random requests through the whole handler (auth
// included) to a real SQLite store: whatever the method, path, query and
// body, the answer is never a 500, and every error is in the SCIM schema.
func FuzzRequest(f *testing.F) {
	h := newHarness(f, stores[0].open(f), nil)
	seedUser := h.createUser(oktaUser)
	seedGroup := h.createGroup(`{"displayName":"Seed","members":[{"value":"` + seedUser + `"}]}`)
	handler := h.dir.Handler(testTenant)
	for _, s := range []struct {
		method      byte
		path, query string
		body        string
	}{
		{0, "/Users", "filter=" + url.QueryEscape(`userName eq "Test.User@okta.local"`), ""},
		{0, "/Users", "count=1&startIndex=1&attributes=userName,emails", ""},
		{0, "/Users/" + seedUser, "excludedAttributes=emails", ""},
		{0, "/Groups/" + seedGroup, "excludedAttributes=members", ""},
		{0, "/Users", "filter=" + url.QueryEscape(`name.familyName eq "User" and (emails.value co "okta" or emails.value co "x")`), ""},
		{1, "/Users", "", oktaUser},
		{1, "/Users", "", `{"userName":"fuzz@example.com","active":"True","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":"x"}}`},
		{1, "/Groups", "", `{"displayName":"G2","members":[{"value":"` + seedUser + `"}]}`},
		{2, "/Users/" + seedUser, "", `{"userName":"Test.User@okta.local","active":true}`},
		{3, "/Users/" + seedUser, "", patchBody(`{"op":"Replace","path":"active","value":"False"}`)},
		{3, "/Groups/" + seedGroup, "", patchBody(`{"op":"remove","path":"members[value eq \"` + seedUser + `\"]"}`)},
		{3, "/Groups/" + seedGroup, "", patchBody(`{"op":"Add","path":"members","value":[{"value":"` + seedUser + `"}]}`)},
		{4, "/Groups/" + seedGroup, "", ""},
		{0, "/ServiceProviderConfig", "", ""},
		{0, "/Schemas/" + schemaUser, "", ""},
		{0, "/ResourceTypes", "", ""},
		{1, "/Bulk", "", "{}"},
		{0, "/Users/%00", "", ""},
		{5, "/Users", "", ""},
	} {
		f.Add(s.method, s.path, s.query, s.body)
	}
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
	f.Fuzz(func(t *testing.T, method byte, path, query, body string) {
		req := &http.Request{
			Method: methods[int(method)%len(methods)],
			URL:    &url.URL{Path: BasePath(testTenant) + path, RawQuery: query},
			Header: http.Header{
				"Authorization": {"Bearer " + h.token},
				"Content-Type":  {mediaSCIM},
			},
			Body: io.NopCloser(strings.NewReader(body)),
		}
		req = req.WithContext(t.Context())
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusNotImplemented {
			t.Fatalf("%s %s?%s %q: %d %s", req.Method, req.URL.Path, query, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e errorBody
			if err := json.NewDecoder(bytes.NewReader(rec.Body.Bytes())).Decode(&e); err != nil ||
				len(e.Schemas) != 1 || e.Schemas[0] != schemaError || e.Status != strconv.Itoa(rec.Code) {
				t.Fatalf("%d without a SCIM error body: %s", rec.Code, rec.Body)
			}
		}
	})
}
