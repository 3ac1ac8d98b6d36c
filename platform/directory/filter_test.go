package directory

import (
	"errors"
	"strings"
	"testing"
)

// filterDoc is a rendered user as filters see it.
const filterDoc = `{
	"id": "2819c223-7f76-453a-919d-413861904646",
	"externalId": "Ext-1",
	"userName": "Olivia.Lopez@example.com",
	"displayName": "Olivia Lopez",
	"active": true,
	"name": {"givenName": "Olivia", "familyName": "Lopez"},
	"emails": [
		{"value": "olivia@example.com", "type": "work", "primary": true},
		{"value": "olivia@example.org", "type": "home"}
	],
	"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales", "manager": {"value": "m-1"}},
	"meta": {"resourceType": "User", "created": "2024-03-01T10:00:00.000Z", "lastModified": "2024-03-05T10:00:00.500Z"}
}`

func TestFilterMatches(t *testing.T) {
	doc := mustDoc(t, filterDoc)
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		{`userName eq "olivia.lopez@example.com"`, true}, // caseExact false
		{`USERNAME EQ "OLIVIA.LOPEZ@EXAMPLE.COM"`, true},
		{`userName eq "olivia"`, false},
		{`userName sw "Oli"`, true},
		{`userName ew "@example.com"`, true},
		{`userName co "lopez"`, true},
		{`externalId eq "ext-1"`, false}, // caseExact true
		{`externalId eq "Ext-1"`, true},
		{`id eq "2819c223-7f76-453a-919d-413861904646"`, true},
		{`displayName eq "Olivia Lopez"`, true},
		{`active eq true`, true},
		{`active eq false`, false},
		{`active ne false`, true},
		{`title pr`, false},
		{`name.familyName pr`, true},
		{`not (userName sw "x")`, true},
		{`name.familyName eq "Lopez" and (emails.value co "example.com" or emails.value co "example.net")`, true},
		{`name.familyName eq "Lopez" and (emails.value co "example.net" or emails.value co "example.edu")`, false},
		{`emails co "example.org"`, true}, // emails compares emails.value
		{`emails[type eq "work" and value co "@example.com"]`, true},
		{`emails[type eq "work" and value co "@example.org"]`, false},
		{`meta.resourceType eq "User"`, true},
		{`meta.created gt "2024-02-29T00:00:00Z"`, true},
		{`meta.created gt "2024-03-01T10:00:00Z"`, false},
		{`meta.lastModified gt "2024-03-05T10:00:00Z"`, true}, // milliseconds count
		{`meta.lastModified le "2024-03-05T11:00:01+01:00"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "sales"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m-1"`, true},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "olivia"`, true},
		{`shoeSize eq "44"`, false},
		{`shoeSize ne "44"`, true},
		{`userName eq "a\"b" or userName gt "N"`, true},
		{`displayName eq "Team (EU) [old]" or ((((((((((((((((((((((((((((((((displayName pr))))))))))))))))))))))))))))))))`, true},
	} {
		expr, err := parseFilter(userType, tc.filter)
		if err != nil {
			t.Errorf("%s: %v", tc.filter, err)
			continue
		}
		if got := matches(scope{rt: userType}, expr, doc); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func TestFilterInvalid(t *testing.T) {
	for _, f := range []string{
		`userName`,
		`userName eq`,
		`userName eq "unterminated`,
		`userName zz "x"`,
		`(userName eq "x"`,
		`userName eq "x" and`,
		`active gt true`,
		`active co "t"`,
		`meta.created gt "yesterday"`,
		`userName co 5`,
		`name eq "x"`,
		`title[value eq "x"]`,
		string(make([]byte, maxFilterBytes+1)),
		strings.Repeat("(", maxFilterNesting+1) + "a pr" + strings.Repeat(")", maxFilterNesting+1),
		"userName eq \"\xff\"",
	} {
		_, err := parseFilter(userType, f)
		var e *Error
		if !errors.As(err, &e) || e.Status != 400 || e.ScimType != scimInvalidFilter {
			t.Errorf("%q: err = %v, want 400 invalidFilter", f, err)
		}
	}
}

func TestPushdown(t *testing.T) {
	for _, tc := range []struct {
		filter, attr, value string
		whole, ok           bool
	}{
		{`userName eq "A@b"`, "userName", "A@b", true, true},
		{`UserName Eq "x"`, "userName", "x", true, true},
		{`urn:ietf:params:scim:schemas:core:2.0:User:externalId eq "e"`, "externalId", "e", true, true},
		{`displayName eq "d" and active eq true`, "displayName", "d", false, true},
		{`active eq true and externalId eq "e"`, "externalId", "e", false, true},
		{`userName eq "a" or userName eq "b"`, "", "", false, false},
		{`userName sw "a"`, "", "", false, false},
		{`name.givenName eq "a"`, "", "", false, false},
		{`userName eq 5`, "", "", false, false},
	} {
		expr, err := parseFilter(userType, tc.filter)
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		attr, value, whole, ok := pushdown(userType, expr)
		if attr != tc.attr || value != tc.value || whole != tc.whole || ok != tc.ok {
			t.Errorf("%s: pushdown = %q %q %v %v, want %q %q %v %v", tc.filter, attr, value, whole, ok, tc.attr, tc.value, tc.whole, tc.ok)
		}
	}
	expr, _ := parseFilter(groupType, `userName eq "x"`)
	if _, _, _, ok := pushdown(groupType, expr); ok {
		t.Error("groups have no userName index")
	}
}

func TestProjection(t *testing.T) {
	doc := mustDoc(t, filterDoc)
	doc["schemas"] = []any{schemaUser}
	for _, tc := range []struct {
		attributes, excluded, want string
	}{
		{"userName,emails", "", `{"id":"2819c223-7f76-453a-919d-413861904646","schemas":["` + schemaUser + `"],"userName":"Olivia.Lopez@example.com",
			"emails":[{"value":"olivia@example.com","type":"work","primary":true},{"value":"olivia@example.org","type":"home"}]}`},
		{`emails[type eq "work"]`, "", `{"id":"2819c223-7f76-453a-919d-413861904646","schemas":["` + schemaUser + `"],
			"emails":[{"value":"olivia@example.com","type":"work","primary":true}]}`},
		{`name.givenName, emails.value ,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`, "", `{"id":"2819c223-7f76-453a-919d-413861904646","schemas":["` + schemaUser + `"],
			"name":{"givenName":"Olivia"},"emails":[{"value":"olivia@example.com"},{"value":"olivia@example.org"}],
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}`},
		{"", "emails,name.givenName,meta,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,id", `{"id":"2819c223-7f76-453a-919d-413861904646","schemas":["` + schemaUser + `"],
			"externalId":"Ext-1","userName":"Olivia.Lopez@example.com","displayName":"Olivia Lopez","active":true,"name":{"familyName":"Lopez"}}`},
		{"unknownThing", "", `{"id":"2819c223-7f76-453a-919d-413861904646","schemas":["` + schemaUser + `"]}`},
	} {
		p, err := parseProjection(userType, tc.attributes, tc.excluded)
		if err != nil {
			t.Fatalf("%q %q: %v", tc.attributes, tc.excluded, err)
		}
		jsonEqual(t, p.apply(doc), tc.want)
	}
	// The document itself is never modified.
	jsonEqual(t, doc, filterDoc[:len(filterDoc)-1]+`,"schemas":["`+schemaUser+`"]}`)

	if _, err := parseProjection(userType, "emails[type eq", ""); err == nil {
		t.Error("malformed attributes accepted")
	}
}
