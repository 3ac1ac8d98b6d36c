package directory

import (
	"net/http"
	"strings"
	"testing"
)

// oktaUser is what Okta's "Create Okta user with realistic values" sends,
// password and read-only groups included.
const oktaUser = `{
	"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
	"userName": "Test.User@okta.local",
	"name": {"givenName": "Test", "familyName": "User"},
	"emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
	"displayName": "Test User",
	"locale": "en-US",
	"externalId": "00ujl29u0le5T6Aj10h7",
	"groups": [],
	"password": "1mz050nq",
	"active": true
}`

// checkOktaUser checks the fields Okta's suite reads from a user.
func checkOktaUser(t *testing.T, u any) {
	t.Helper()
	for path, want := range map[string]any{
		"userName":          "Test.User@okta.local",
		"name.givenName":    "Test",
		"name.familyName":   "User",
		"active":            true,
		"emails.0.value":    "test.user@okta.local",
		"schemas.0":         schemaUser,
		"meta.resourceType": "User",
	} {
		if got := field(u, path); got != want {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
	}
	if asString(field(u, "id")) == "" {
		t.Error("no id")
	}
	if field(u, "password") != nil || field(u, "groups") != nil {
		t.Errorf("password or groups echoed: %v", u)
	}
}

// TestUsersOkta follows Okta's SCIM 2.0 spec test and CRUD suite.
func TestUsersOkta(t *testing.T) {
	eachStore(t, func(t *testing.T, h *harness) {
		// "Make sure random user doesn't exist": 200 with totalResults 0, not 404.
		r := h.must(http.StatusOK, h.do("GET", "/Users"+filterQuery(`userName eq "Test.User@okta.local"`), ""))
		if num(t, r.body["totalResults"]) != 0 || len(ids(r)) != 0 || num(t, r.body["startIndex"]) != 1 {
			t.Fatalf("unknown user: %s", r.raw)
		}

		r = h.must(http.StatusCreated, h.do("POST", "/Users", oktaUser))
		checkOktaUser(t, r.body)
		id := asString(r.body["id"])
		if loc := r.header.Get("Location"); loc != h.base()+"/Users/"+id || field(r.body, "meta.location") != loc {
			t.Errorf("Location %q, meta.location %v", loc, field(r.body, "meta.location"))
		}
		if r.header.Get("ETag") != `W/"1"` || field(r.body, "meta.version") != `W/"1"` {
			t.Errorf("ETag %q, meta.version %v", r.header.Get("ETag"), field(r.body, "meta.version"))
		}
		if field(r.body, "meta.created") != "2020-01-02T03:04:06.000Z" || field(r.body, "meta.lastModified") != field(r.body, "meta.created") {
			t.Errorf("meta times from the injected clock: %v", r.body["meta"])
		}

		// "Test Users endpoint": count=1&startIndex=1.
		r = h.must(http.StatusOK, h.do("GET", "/Users?count=1&startIndex=1", ""))
		if field(r.body, "schemas.0") != schemaList {
			t.Errorf("list schemas %v", r.body["schemas"])
		}
		for _, k := range []string{"itemsPerPage", "startIndex", "totalResults"} {
			num(t, r.body[k])
		}
		checkOktaUser(t, field(r.body, "Resources.0"))

		r = h.must(http.StatusOK, h.do("GET", "/Users/"+id, ""))
		checkOktaUser(t, r.body)
		if r.body["id"] != id {
			t.Errorf("id %v, want %s", r.body["id"], id)
		}

		// "Username Case Sensitivity Check".
		r = h.must(http.StatusOK, h.do("GET", "/Users"+filterQuery(`userName eq "TEST.USER@OKTA.LOCAL"`), ""))
		if got := ids(r); len(got) != 1 || got[0] != id {
			t.Errorf("case-insensitive userName filter: %s", r.raw)
		}

		// "Expect failure when recreating user", whatever the case.
		h.mustError(http.StatusConflict, scimUniqueness, h.do("POST", "/Users", strings.Replace(oktaUser, "Test.User", "test.user", 1)))

		// "Test invalid User by ID".
		h.mustError(http.StatusNotFound, "", h.do("GET", "/Users/010101001010101011", ""))

		// Okta updates profiles with PUT.
		put := strings.Replace(oktaUser, `"givenName": "Test"`, `"givenName": "Tess"`, 1)
		r = h.must(http.StatusOK, h.do("PUT", "/Users/"+id, put))
		if field(r.body, "name.givenName") != "Tess" || field(r.body, "meta.version") != `W/"2"` {
			t.Errorf("PUT: %s", r.raw)
		}

		// Okta deactivates instead of deleting: replace without a path.
		r = h.must(http.StatusOK, h.do("PATCH", "/Users/"+id,
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`))
		if r.body["active"] != false || r.body["userName"] != "Test.User@okta.local" {
			t.Errorf("PATCH answers the full resource with active false: %s", r.raw)
		}
		if r := h.must(http.StatusOK, h.do("GET", "/Users/"+id, "")); r.body["active"] != false {
			t.Errorf("GET after deactivation: active %v", r.body["active"])
		}
		r = h.must(http.StatusOK, h.do("GET", "/Users"+filterQuery(`userName eq "test.user@okta.local"`), ""))
		if field(r.body, "Resources.0.active") != false {
			t.Errorf("filter after deactivation: %s", r.raw)
		}
		r = h.must(http.StatusOK, h.do("GET", "/Users"+filterQuery(`active eq false`), ""))
		if got := ids(r); len(got) != 1 || got[0] != id {
			t.Errorf("active eq false: %s", r.raw)
		}
		// Reactivation.
		r = h.must(http.StatusOK, h.do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]}`))
		if r.body["active"] != true {
			t.Errorf("reactivation: %s", r.raw)
		}

		h.must(http.StatusNoContent, h.do("DELETE", "/Users/"+id, ""))
		h.mustError(http.StatusNotFound, "", h.do("GET", "/Users/"+id, ""))
		h.mustError(http.StatusNotFound, "", h.do("DELETE", "/Users/"+id, ""))
		r = h.must(http.StatusOK, h.do("GET", "/Users"+filterQuery(`userName eq "Test.User@okta.local"`), ""))
		if num(t, r.body["totalResults"]) != 0 {
			t.Errorf("deleted user still listed: %s", r.raw)
		}

		want := []string{"scim.user.create", "scim.user.replace", "scim.user.deactivate", "scim.user.patch", "scim.user.delete"}
		if got := h.auditActions(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("audit %v, want %v", got, want)
		}
	})
}

// TestUsersEntra follows Microsoft's reference tests (MSPM, MSLA) and the
// request shapes Entra ID sends.
func TestUsersEntra(t *testing.T) {
	eachStore(t, func(t *testing.T, h *harness) {
		const manager = `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"boss@contoso.com","active":true}`
		boss1, boss2 := h.createUser(manager), h.createUser(strings.Replace(manager, "boss@", "boss2@", 1))

		// MSPM "Post EnterpriseUser" with the string "True" for active,
		// sent as application/json.
		r := h.must(http.StatusCreated, h.do("POST", "/Users", `{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			"externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
			"userName": "Test_User_ab6490ee@contoso.com",
			"active": "True",
			"emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@contoso.com"}],
			"meta": {"resourceType": "User"},
			"name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
			"title": "Engineer",
			"roles": [],
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "department": "Tour Operations"}
		}`, "Content-Type", "application/json"))
		id := asString(r.body["id"])
		if r.body["active"] != true {
			t.Errorf(`active "True" stored as %#v, want the boolean true`, r.body["active"])
		}
		if field(r.body, "schemas.1") != schemaEnterprise {
			t.Errorf("schemas %v lack the enterprise extension", r.body["schemas"])
		}
		if ext, _ := r.body[schemaEnterprise].(map[string]any); ext["employeeNumber"] != "701984" {
			t.Errorf("enterprise extension: %s", r.raw)
		}

		// ELIM azuread/update_user.json: capitalised ops, filtered path.
		h.must(http.StatusOK, h.do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
			{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@contoso.com"},
			{"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},
			{"op":"Replace","path":"userName","value":"5b50642d@contoso.com"},
			{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Finance"}]}`))
		r = h.must(http.StatusOK, h.do("GET", "/Users/"+id, ""))
		ext, _ := r.body[schemaEnterprise].(map[string]any)
		if field(r.body, "emails.0.value") != "updatedEmail@contoso.com" || field(r.body, "name.familyName") != "updatedFamilyName" ||
			r.body["userName"] != "5b50642d@contoso.com" || ext["department"] != "Finance" || ext["employeeNumber"] != "701984" {
			t.Errorf("after Entra PATCH: %s", r.raw)
		}

		// MSLA #5/#25: manager set (bare id), changed, removed by replace with "".
		managerOf := func() any {
			r := h.must(http.StatusOK, h.do("GET", "/Users/"+id, ""))
			ext, _ := r.body[schemaEnterprise].(map[string]any)
			return field(ext, "manager.value")
		}
		const mgrPath = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"
		h.must(http.StatusOK, h.do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"`+mgrPath+`","value":"`+boss1+`"}]}`))
		if got := managerOf(); got != boss1 {
			t.Errorf("manager after Add: %v", got)
		}
		h.must(http.StatusOK, h.do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"`+mgrPath+`","value":{"value":"`+boss2+`"}}]}`))
		if got := managerOf(); got != boss2 {
			t.Errorf("manager after Replace: %v", got)
		}
		h.must(http.StatusOK, h.do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"`+mgrPath+`","value":""}]}`))
		if got := managerOf(); got != nil {
			t.Errorf("manager after Replace with empty: %v", got)
		}

		// MSLA #16 SCIM_Null_Update_Test: "" then null clear optional attributes.
		for _, empty := range []string{`""`, `null`} {
			h.must(http.StatusOK, h.do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
				{"op":"Replace","path":"title","value":`+empty+`},
				{"op":"Replace","path":"name.formatted","value":`+empty+`},
				{"op":"Replace","path":"externalId","value":`+empty+`}]}`))
			r = h.must(http.StatusOK, h.do("GET", "/Users/"+id, ""))
			if r.body["title"] != nil || field(r.body, "name.formatted") != nil || r.body["externalId"] != nil {
				t.Errorf("null update with %s: %s", empty, r.raw)
			}
		}

		// MSLA #18: a PATCH of several single-valued attributes round-trips.
		h.must(http.StatusOK, h.do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
			{"op":"Add","value":{"displayName":"Updated Name","preferredLanguage":"fr-FR","name.givenName":"Ada","nickName":"ada"}}]}`))
		r = h.must(http.StatusOK, h.do("GET", "/Users/"+id, ""))
		if r.body["displayName"] != "Updated Name" || r.body["preferredLanguage"] != "fr-FR" || field(r.body, "name.givenName") != "Ada" || r.body["nickName"] != "ada" {
			t.Errorf("after PATCH without path: %s", r.raw)
		}
		r = h.must(http.StatusOK, h.do("GET", "/Users"+filterQuery(`displayName eq "updated name"`), ""))
		if got := ids(r); len(got) != 1 || got[0] != id {
			t.Errorf("displayName filter after PATCH: %s", r.raw)
		}

		// A work email where there is none: the filtered replace creates it.
		other := h.createUser(userBody("no.mail@contoso.com"))
		h.must(http.StatusOK, h.do("PATCH", "/Users/"+other, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
			{"op":"Replace","path":"emails[type eq \"work\"].value","value":"no.mail@contoso.com"}]}`))
		r = h.must(http.StatusOK, h.do("GET", "/Users/"+other, ""))
		if field(r.body, "emails.0.type") != "work" || field(r.body, "emails.0.value") != "no.mail@contoso.com" {
			t.Errorf("work email added by filtered replace: %s", r.raw)
		}

		// MSQA "Disable User": Replace active with a string boolean.
		r = h.must(http.StatusOK, h.do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`))
		if r.body["active"] != false {
			t.Errorf("disable: %s", r.raw)
		}

		// MSPM "User 2 replace test", misspelled attribute ignored.
		h.must(http.StatusOK, h.do("PUT", "/Users/"+other, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
			"userName":"no.mail@contoso.com","active":false,"adreses":[{"country":"Germany"}],"displayName":"Kimberly Baker",
			"emails":[{"type":"work","primary":true,"value":"anna33@example.com"}]}`))
		r = h.must(http.StatusOK, h.do("GET", "/Users/"+other, ""))
		if r.body["adreses"] != nil || r.body["displayName"] != "Kimberly Baker" || r.body["active"] != false ||
			field(r.body, "emails.0.value") != "anna33@example.com" {
			t.Errorf("after PUT: %s", r.raw)
		}
		// PUT without active keeps the state.
		h.must(http.StatusOK, h.do("PUT", "/Users/"+other, `{"userName":"no.mail@contoso.com"}`))
		if r := h.must(http.StatusOK, h.do("GET", "/Users/"+other, "")); r.body["active"] != false || r.body["emails"] != nil {
			t.Errorf("PUT without active: %s", r.raw)
		}
	})
}

// TestUsersInvalid: bad input is a 4xx in the SCIM error schema (MSPM
// "Post no username", "Post junk", ELIM TestInvalidRequests).
func TestUsersInvalid(t *testing.T) {
	eachStore(t, func(t *testing.T, h *harness) {
		id := h.createUser(userBody("valid@example.com"))
		for _, tc := range []struct {
			name, method, path, body string
			status                   int
			scimType                 string
			hdr                      []string
		}{
			{"no userName", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"active":true}`, 400, scimInvalidValue, nil},
			{"empty userName", "POST", "/Users", `{"userName":""}`, 400, scimInvalidValue, nil},
			{"junk", "POST", "/Users", `junk`, 400, scimInvalidSyntax, nil},
			{"array", "POST", "/Users", `[{"userName":"a"}]`, 400, scimInvalidSyntax, nil},
			{"trailing data", "POST", "/Users", `{"userName":"a"} {}`, 400, scimInvalidSyntax, nil},
			{"empty body", "POST", "/Users", ``, 400, scimInvalidSyntax, nil},
			{"number userName", "POST", "/Users", `{"userName":42}`, 400, scimInvalidValue, nil},
			{"number externalId", "POST", "/Users", `{"userName":"a","externalId":42}`, 400, scimInvalidValue, nil},
			{"boolean not a boolean", "POST", "/Users", `{"userName":"a","active":"yes"}`, 400, scimInvalidValue, nil},
			{"NUL in userName", "POST", "/Users", `{"userName":"a\u0000b"}`, 400, scimInvalidValue, nil},
			{"long userName", "POST", "/Users", `{"userName":"` + strings.Repeat("u", 5000) + `"}`, 400, scimInvalidValue, nil},
			{"long externalId", "PUT", "/Users/" + id, `{"userName":"valid@example.com","externalId":"` + strings.Repeat("e", 5000) + `"}`, 400, scimInvalidValue, nil},
			{"long group name", "POST", "/Groups", `{"displayName":"` + strings.Repeat("g", 5000) + `"}`, 400, scimInvalidValue, nil},
			{"duplicate attribute", "POST", "/Users", `{"userName":"a","UserName":"b"}`, 400, scimInvalidSyntax, nil},
			{"PUT without userName", "PUT", "/Users/" + id, `{"displayName":"x"}`, 400, scimInvalidValue, nil},
			{"PUT to unknown id", "PUT", "/Users/nope", userBody("x@example.com"), 404, "", nil},
			{"PATCH to unknown id", "PATCH", "/Users/nope", `{"Operations":[{"op":"add","value":{"title":"x"}}]}`, 404, "", nil},
			{"DELETE unknown id", "DELETE", "/Users/nope", ``, 404, "", nil},
			{"NUL id", "GET", "/Users/a%00b", ``, 404, "", nil},
			{"invalid UTF-8 id", "PATCH", "/Users/%FF", `{"Operations":[{"op":"add","value":{"title":"x"}}]}`, 404, "", nil},
			{"invalid UTF-8 filter", "GET", "/Users?filter=userName%20eq%20%22%FF%22", ``, 400, scimInvalidFilter, nil},
			{"NUL group name", "POST", "/Groups", `{"displayName":"\u0000"}`, 400, scimInvalidValue, nil},
			{"NUL member", "POST", "/Groups", `{"displayName":"g","members":[{"value":"\u0000"}]}`, 400, scimInvalidValue, nil},
			{"NUL in a PATCH value", "PATCH", "/Users/" + id, `{"Operations":[{"op":"add","path":"title","value":"\u0000"}]}`, 400, scimInvalidValue, nil},
			{"PATCH junk", "PATCH", "/Users/" + id, `{"Operations":"x"}`, 400, scimInvalidSyntax, nil},
			{"PATCH bad path", "PATCH", "/Users/" + id, `{"Operations":[{"op":"replace","path":"emails[","value":"x"}]}`, 400, scimInvalidPath, nil},
			{"PATCH id", "PATCH", "/Users/" + id, `{"Operations":[{"op":"replace","path":"id","value":"mine"}]}`, 400, scimMutability, nil},
			{"PATCH clears userName", "PATCH", "/Users/" + id, `{"Operations":[{"op":"remove","path":"userName"}]}`, 400, scimInvalidValue, nil},
			{"text/plain", "POST", "/Users", userBody("b@example.com"), 415, "", []string{"Content-Type", "text/plain"}},
			{"too large", "POST", "/Users", `{"userName":"a","title":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "", nil},
			{"method", "DELETE", "/Users", ``, 405, "", nil},
			{"search", "POST", "/Users/.search", `{}`, 501, "", nil},
			{"bad filter", "GET", "/Users" + filterQuery(`userName eq`), ``, 400, scimInvalidFilter, nil},
			{"bad filter value", "GET", "/Users" + filterQuery(`userName eq "\u0000"`), ``, 400, scimInvalidFilter, nil},
			{"bad count", "GET", "/Users?count=ten", ``, 400, scimInvalidValue, nil},
			{"bad startIndex", "GET", "/Users?startIndex=1.5", ``, 400, scimInvalidValue, nil},
			{"bad attributes", "GET", "/Users?attributes=emails%5B", ``, 400, scimInvalidValue, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := h.with(t)
				h.mustError(tc.status, tc.scimType, h.do(tc.method, tc.path, tc.body, tc.hdr...))
			})
		}
		// Nothing above changed the user.
		if r := h.must(http.StatusOK, h.do("GET", "/Users/"+id, "")); r.body["userName"] != "valid@example.com" || field(r.body, "meta.version") != `W/"1"` {
			t.Errorf("user changed by failed requests: %s", r.raw)
		}
	})
}

func TestUsersProjection(t *testing.T) {
	eachStore(t, func(t *testing.T, h *harness) {
		id := h.createUser(`{"userName":"proj@example.com","displayName":"P","emails":[{"value":"p@work.example","type":"work"},{"value":"p@home.example","type":"home"}],"name":{"givenName":"P"}}`)
		// MSPM "Get User Attributes".
		r := h.must(http.StatusOK, h.do("GET", "/Users/"+id+"?attributes=userName,emails", ""))
		if r.body["userName"] != "proj@example.com" || field(r.body, "emails.1.value") != "p@home.example" ||
			r.body["displayName"] != nil || r.body["name"] != nil || r.body["id"] != id || r.body["schemas"] == nil {
			t.Errorf("attributes=userName,emails: %s", r.raw)
		}
		// MSPM complex attribute filter.
		r = h.must(http.StatusOK, h.do("GET", "/Users/"+id+"?attributes="+strings.ReplaceAll(`emails[type eq "work"]`, " ", "%20"), ""))
		if list, _ := r.body["emails"].([]any); len(list) != 1 || field(r.body, "emails.0.type") != "work" {
			t.Errorf(`attributes=emails[type eq "work"]: %s`, r.raw)
		}
		r = h.must(http.StatusOK, h.do("GET", "/Users"+filterQuery(`userName eq "proj@example.com"`)+"&excludedAttributes=emails,name", ""))
		if field(r.body, "Resources.0.emails") != nil || field(r.body, "Resources.0.name") != nil || field(r.body, "Resources.0.displayName") != "P" {
			t.Errorf("excludedAttributes on a list: %s", r.raw)
		}
		// Projection applies to write responses too (RFC 7644 §3.9).
		r = h.must(http.StatusOK, h.do("PATCH", "/Users/"+id+"?attributes=displayName", `{"Operations":[{"op":"replace","path":"displayName","value":"Q"}]}`))
		if r.body["displayName"] != "Q" || r.body["userName"] != nil {
			t.Errorf("projected PATCH response: %s", r.raw)
		}
	})
}
