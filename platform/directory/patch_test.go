package directory

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// mustDoc decodes a JSON document as a request body would be.
func mustDoc(t testing.TB, s string) map[string]any {
	t.Helper()
	m, err := decodeObject([]byte(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

// patchDoc normalises base, applies the PatchOp body and normalises the
// result, as the PATCH handler does, without the store.
func patchDoc(t testing.TB, rt *resourceType, base, body string) (map[string]any, error) {
	t.Helper()
	doc, err := rt.normalize(mustDoc(t, base))
	if err != nil {
		t.Fatalf("normalize base: %v", err)
	}
	ops, err := parsePatch([]byte(body))
	if err != nil {
		return nil, err
	}
	out, _, err := applyPatch(rt, "id-1", doc, ops)
	if err != nil {
		return nil, err
	}
	return rt.normalize(out)
}

func jsonEqual(t testing.TB, got map[string]any, want string) {
	t.Helper()
	w := mustDoc(t, want)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("got  %s\nwant %s", gb, wb)
	}
}

const baseUser = `{
	"userName": "ada@example.com",
	"active": true,
	"name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
	"title": "Engineer",
	"emails": [{"value": "ada@example.com", "type": "work", "primary": true}]
}`

func TestPatchUser(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{
			name: "okta deactivate without path",
			body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`,
			want: `{"userName":"ada@example.com","active":false,"name":{"givenName":"Ada","familyName":"Lovelace","formatted":"Ada Lovelace"},"title":"Engineer","emails":[{"value":"ada@example.com","type":"work","primary":true}]}`,
		},
		{
			name: "entra capitalised ops with paths",
			body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
				{"op":"Replace","path":"emails[type eq \"work\"].value","value":"ada.l@example.com"},
				{"op":"Replace","path":"name.familyName","value":"Byron"},
				{"op":"Replace","path":"userName","value":"ada.byron@example.com"},
				{"op":"Replace","path":"active","value":false}]}`,
			want: `{"userName":"ada.byron@example.com","active":false,"name":{"givenName":"Ada","familyName":"Byron","formatted":"Ada Lovelace"},"title":"Engineer","emails":[{"value":"ada.l@example.com","type":"work","primary":true}]}`,
		},
		{
			name: "entra string boolean",
			body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
			want: `{"userName":"ada@example.com","active":false,"name":{"givenName":"Ada","familyName":"Lovelace","formatted":"Ada Lovelace"},"title":"Engineer","emails":[{"value":"ada@example.com","type":"work","primary":true}]}`,
		},
		{
			name: "replace through a filter that matches nothing adds the element",
			body: `{"Operations":[{"op":"replace","path":"phoneNumbers[type eq \"mobile\"].value","value":"+33 6 00 00 00 00"}]}`,
			want: `{"userName":"ada@example.com","active":true,"name":{"givenName":"Ada","familyName":"Lovelace","formatted":"Ada Lovelace"},"title":"Engineer","emails":[{"value":"ada@example.com","type":"work","primary":true}],"phoneNumbers":[{"type":"mobile","value":"+33 6 00 00 00 00"}]}`,
		},
		{
			name: "null update: empty string then null clear",
			body: `{"Operations":[{"op":"replace","path":"title","value":""},{"op":"Replace","path":"name.formatted","value":null},{"op":"add","value":{"name.givenName":""}}]}`,
			want: `{"userName":"ada@example.com","active":true,"name":{"familyName":"Lovelace"},"emails":[{"value":"ada@example.com","type":"work","primary":true}]}`,
		},
		{
			name: "unknown attributes are ignored",
			body: `{"Operations":[{"op":"replace","path":"favouriteColour","value":"blue"},{"op":"add","path":"urn:example:custom:2.0:User:shoeSize","value":"44"},{"op":"replace","value":{"nickname":"Countess","bogus":1}}]}`,
			want: `{"userName":"ada@example.com","active":true,"nickName":"Countess","name":{"givenName":"Ada","familyName":"Lovelace","formatted":"Ada Lovelace"},"title":"Engineer","emails":[{"value":"ada@example.com","type":"work","primary":true}]}`,
		},
		{
			name: "manager set, changed and removed (Entra shapes)",
			body: `{"Operations":[
				{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"boss-1"},
				{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":"boss-2"}},
				{"op":"Add","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"R&D"}}]}`,
			want: `{"userName":"ada@example.com","active":true,"name":{"givenName":"Ada","familyName":"Lovelace","formatted":"Ada Lovelace"},"title":"Engineer","emails":[{"value":"ada@example.com","type":"work","primary":true}],
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"boss-2"},"department":"R&D"}}`,
		},
		{
			name: "id repeated unchanged is ignored; meta ignored",
			body: `{"Operations":[{"op":"replace","value":{"id":"id-1","meta":{"version":"x"},"displayName":"Ada L."}}]}`,
			want: `{"userName":"ada@example.com","active":true,"displayName":"Ada L.","name":{"givenName":"Ada","familyName":"Lovelace","formatted":"Ada Lovelace"},"title":"Engineer","emails":[{"value":"ada@example.com","type":"work","primary":true}]}`,
		},
		{
			name: "add to a multi-valued attribute appends, same value merges",
			body: `{"Operations":[{"op":"add","path":"emails","value":[{"value":"ADA@example.com","type":"work","display":"Ada"},{"value":"ada@home.example","type":"home"}]}]}`,
			want: `{"userName":"ada@example.com","active":true,"name":{"givenName":"Ada","familyName":"Lovelace","formatted":"Ada Lovelace"},"title":"Engineer","emails":[{"value":"ADA@example.com","type":"work","primary":true,"display":"Ada"},{"value":"ada@home.example","type":"home"}]}`,
		},
		{
			name: "remove by filter, then remove a filter that matches nothing",
			body: `{"Operations":[{"op":"remove","path":"emails[type eq \"work\"]"},{"op":"remove","path":"emails[type eq \"home\"]"}]}`,
			want: `{"userName":"ada@example.com","active":true,"name":{"givenName":"Ada","familyName":"Lovelace","formatted":"Ada Lovelace"},"title":"Engineer"}`,
		},
		{
			name: "whole extension as path",
			body: `{"Operations":[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","value":{"employeeNumber":"42","costCenter":"CC1"}}]}`,
			want: `{"userName":"ada@example.com","active":true,"name":{"givenName":"Ada","familyName":"Lovelace","formatted":"Ada Lovelace"},"title":"Engineer","emails":[{"value":"ada@example.com","type":"work","primary":true}],
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"42","costCenter":"CC1"}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := patchDoc(t, userType, baseUser, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, got, tc.want)
		})
	}
}

func TestPatchGroupMembers(t *testing.T) {
	const base = `{"displayName":"Engineering","members":[{"value":"u1"},{"value":"u2"}]}`
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"okta add", `{"Operations":[{"op":"add","path":"members","value":[{"value":"u3","display":"Carol"}]}]}`, []string{"u1", "u2", "u3"}},
		{"entra Add with null $ref, duplicate ignored", `{"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"u3"},{"value":"u1"}]}]}`, []string{"u1", "u2", "u3"}},
		{"okta remove by value filter", `{"Operations":[{"op":"remove","path":"members[value eq \"u1\"]"}]}`, []string{"u2"}},
		{"remove of an absent member is harmless", `{"Operations":[{"op":"remove","path":"members[value eq \"nobody\"]"}]}`, []string{"u1", "u2"}},
		{"entra Remove with value list", `{"Operations":[{"op":"Remove","path":"members","value":[{"$ref":null,"value":"u2"}]}]}`, []string{"u1"}},
		{"okta replace whole list", `{"Operations":[{"op":"replace","path":"members","value":[{"value":"u4"},{"value":"u5"}]}]}`, []string{"u4", "u5"}},
		{"remove all", `{"Operations":[{"op":"remove","path":"members"}]}`, []string{}},
		{"add nothing", `{"Operations":[{"op":"add","path":"members","value":[]},{"op":"add","path":"members","value":null}]}`, []string{"u1", "u2"}},
		{"replace with nothing", `{"Operations":[{"op":"replace","path":"members","value":[]}]}`, []string{}},
		{"add without path", `{"Operations":[{"op":"add","value":{"members":[{"value":"u9"}]}}]}`, []string{"u1", "u2", "u9"}},
		{"add through a value filter", `{"Operations":[{"op":"add","path":"members[value eq \"u7\"]","value":{"display":"x"}}]}`, []string{"u1", "u2", "u7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := patchDoc(t, groupType, base, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			ids, err := memberIDs(got)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids, tc.want) {
				t.Errorf("members = %v, want %v", ids, tc.want)
			}
		})
	}

	t.Run("okta rename without path keeps members", func(t *testing.T) {
		got, err := patchDoc(t, groupType, base, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"id":"id-1","displayName":"Platform"}}]}`)
		if err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, got, `{"displayName":"Platform","members":[{"value":"u1"},{"value":"u2"}]}`)
	})
}

func TestPatchErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, scimType string
	}{
		{"not json", `{"Operations":`, scimInvalidSyntax},
		{"no operations", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`, scimInvalidSyntax},
		{"empty operations", `{"Operations":[]}`, scimInvalidSyntax},
		{"wrong schema", `{"schemas":["urn:x"],"Operations":[{"op":"add","value":{}}]}`, scimInvalidSyntax},
		{"unknown op", `{"Operations":[{"op":"merge","path":"title","value":"x"}]}`, scimInvalidSyntax},
		{"remove without path", `{"Operations":[{"op":"remove"}]}`, scimNoTarget},
		{"bad path", `{"Operations":[{"op":"replace","path":"emails[type eq","value":"x"}]}`, scimInvalidPath},
		{"path nested too deep", `{"Operations":[{"op":"replace","path":"emails[((((((((type eq \"x\"))))))))].value","value":"x"}]}`, scimInvalidPath},
		{"path not a string", `{"Operations":[{"op":"replace","path":7,"value":"x"}]}`, scimInvalidPath},
		{"value filter on a simple attribute", `{"Operations":[{"op":"replace","path":"title[value eq \"x\"]","value":"y"}]}`, scimInvalidPath},
		{"filter with nothing to build from", `{"Operations":[{"op":"replace","path":"emails[value co \"zzz\"].type","value":"work"}]}`, scimNoTarget},
		{"no path and a non-object value", `{"Operations":[{"op":"replace","value":false}]}`, scimInvalidValue},
		{"wrong type", `{"Operations":[{"op":"replace","path":"active","value":"maybe"}]}`, scimInvalidValue},
		{"userName not a string", `{"Operations":[{"op":"replace","path":"userName","value":42}]}`, scimInvalidValue},
		{"userName cleared", `{"Operations":[{"op":"remove","path":"userName"}]}`, scimInvalidValue},
		{"id changed", `{"Operations":[{"op":"replace","path":"id","value":"other"}]}`, scimMutability},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := patchDoc(t, userType, baseUser, tc.body)
			if err == nil {
				// userName cleared is caught by the handler's required check.
				if tc.name == "userName cleared" {
					return
				}
				t.Fatal("no error")
			}
			var e *Error
			if !errors.As(err, &e) || e.Status != 400 || e.ScimType != tc.scimType {
				t.Fatalf("err = %v, want 400 %s", err, tc.scimType)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	got, err := userType.normalize(mustDoc(t, `{
		"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"id":"client-chosen","meta":{"resourceType":"User"},
		"USERNAME":"bob@example.com","Active":"True","password":"hunter2","groups":[],
		"adreses":[{"country":"Germany"}],
		"name":{"givenName":"Bob","middleName":null,"nonsense":1},
		"emails":{"value":"bob@example.com"},
		"roles":[],
		"urn:ietf:params:scim:schemas:core:2.0:User:title":"Dr",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"Department":"Sales","manager":{"value":"m1","displayName":"Boss"}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, `{"userName":"bob@example.com","active":true,"name":{"givenName":"Bob"},"emails":[{"value":"bob@example.com"}],"title":"Dr",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","manager":{"value":"m1","displayName":"Boss"}}}`)

	for _, bad := range []string{
		`{"userName":["a"]}`,
		`{"userName":"a","externalId":12}`,
		`{"userName":"a","active":"yes"}`,
		`{"userName":"a","name":"Bob"}`,
		`{"userName":"a","username":"b"}`,
		`{"userName":"a","emails":[[{"value":"x"}]]}`,
		`{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":"x"}`,
	} {
		if _, err := userType.normalize(mustDoc(t, bad)); err == nil {
			t.Errorf("normalize(%s): no error", bad)
		}
	}
}
