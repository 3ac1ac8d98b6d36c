package directory

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"vigie/platform/secret"
)

func TestDiscovery(t *testing.T) {
	eachStore(t, func(t *testing.T, h *harness) {
		spc := h.must(http.StatusOK, h.do("GET", "/ServiceProviderConfig", "")).body
		for path, want := range map[string]any{
			"patch.supported":              true, // MSPM "Patch supported is true"
			"filter.supported":             true,
			"etag.supported":               true,
			"bulk.supported":               false,
			"sort.supported":               false,
			"schemas.0":                    schemaSPConfig,
			"authenticationSchemes.0.type": "oauthbearertoken",
		} {
			if got := field(spc, path); got != want {
				t.Errorf("ServiceProviderConfig %s = %v, want %v", path, got, want)
			}
		}

		rts := h.must(http.StatusOK, h.do("GET", "/ResourceTypes", "")).body
		if field(rts, "schemas.0") != schemaList || num(t, rts["totalResults"]) != 2 {
			t.Fatalf("ResourceTypes: %v", rts)
		}
		if field(rts, "Resources.0.name") != "User" || field(rts, "Resources.0.endpoint") != "/Users" ||
			field(rts, "Resources.0.schemaExtensions.0.schema") != schemaEnterprise {
			t.Errorf("ResourceTypes User: %v", field(rts, "Resources.0"))
		}
		if field(rts, "Resources.1.name") != "Group" || field(rts, "Resources.1.schema") != schemaGroup {
			t.Errorf("ResourceTypes Group: %v", field(rts, "Resources.1"))
		}
		h.must(http.StatusOK, h.do("GET", "/ResourceTypes/Group", ""))
		h.mustError(http.StatusNotFound, "", h.do("GET", "/ResourceTypes/Printer", ""))

		schemas := h.must(http.StatusOK, h.do("GET", "/Schemas", "")).body
		var got []string
		for _, s := range schemas["Resources"].([]any) {
			got = append(got, asString(field(s, "id")))
		}
		// MSLA: group tests fail, not skip, when the Group schema is missing.
		for _, want := range []string{schemaUser, schemaGroup, schemaEnterprise} {
			if !slices.Contains(got, want) {
				t.Errorf("/Schemas lacks %s (has %v)", want, got)
			}
		}
		// MSLA Schema_Discoverability_Test flattens attributes as Entra
		// maps them, e.g. emails[type eq "work"].value.
		flat := flattenSchema(h.must(http.StatusOK, h.do("GET", "/Schemas/"+schemaUser, "")).body)
		for _, want := range []string{"userName", "active", "displayName", "title", "externalId", "emails.value", "emails.type",
			"name.givenName", "name.familyName", "addresses.streetAddress", "phoneNumbers.value", "preferredLanguage"} {
			if !slices.Contains(flat, want) {
				t.Errorf("User schema lacks %s", want)
			}
		}
		ent := flattenSchema(h.must(http.StatusOK, h.do("GET", "/Schemas/"+schemaEnterprise, "")).body)
		for _, want := range []string{"employeeNumber", "department", "manager.value"} {
			if !slices.Contains(ent, want) {
				t.Errorf("EnterpriseUser schema lacks %s", want)
			}
		}
		grp := flattenSchema(h.must(http.StatusOK, h.do("GET", "/Schemas/"+schemaGroup, "")).body)
		for _, want := range []string{"displayName", "members.value", "externalId"} {
			if !slices.Contains(grp, want) {
				t.Errorf("Group schema lacks %s", want)
			}
		}
		h.mustError(http.StatusNotFound, "", h.do("GET", "/Schemas/urn:example:nothing", ""))

		h.mustError(http.StatusMethodNotAllowed, "", h.do("POST", "/ServiceProviderConfig", "{}"))
		h.mustError(http.StatusNotImplemented, "", h.do("POST", "/Bulk", "{}"))
		h.mustError(http.StatusNotFound, "", h.do("GET", "/Printers", ""))
		h.mustError(http.StatusNotFound, "", h.do("GET", "/Users/a/b", ""))
	})
}

func flattenSchema(s map[string]any) []string {
	var out []string
	for _, a := range s["attributes"].([]any) {
		name := asString(field(a, "name"))
		out = append(out, name)
		subs, _ := field(a, "subAttributes").([]any)
		for _, sa := range subs {
			out = append(out, name+"."+asString(field(sa, "name")))
		}
	}
	return out
}

func TestAuth(t *testing.T) {
	eachStore(t, func(t *testing.T, h *harness) {
		for _, tc := range []struct {
			name, auth string
		}{
			{"absent", ""},
			{"wrong token", "Bearer " + secret.NewToken()},
			{"other tenant's token", "Bearer " + h.otherToken},
			{"basic scheme", "Basic " + h.token},
			{"empty bearer", "Bearer "},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := h.with(t)
				for _, path := range []string{"/Users", "/Groups", "/ServiceProviderConfig", "/Users?filter=" + "userName%20eq%20%22x%22"} {
					r := h.do("GET", path, "", "Authorization", tc.auth)
					// OKTA "Check status 401": error schema, detail, status "401".
					h.mustError(http.StatusUnauthorized, "", r)
					if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
					}
				}
				h.mustError(http.StatusUnauthorized, "", h.do("POST", "/Users", userBody("x@example.com"), "Authorization", tc.auth))
			})
		}
		t.Run("scheme is case-insensitive", func(t *testing.T) {
			h.with(t).must(http.StatusOK, h.with(t).do("GET", "/Users", "", "Authorization", "bearer "+h.token))
		})
		t.Run("a token works for its own tenant only", func(t *testing.T) {
			h := h.with(t)
			other := h.srv.URL + BasePath(otherTenant) + "/Users"
			h.must(http.StatusOK, h.doURL("GET", other, "", "Authorization", "Bearer "+h.otherToken))
			h.mustError(http.StatusUnauthorized, "", h.doURL("GET", other, "", "Authorization", "Bearer "+h.token))
			h.mustError(http.StatusUnauthorized, "", h.doURL("GET", h.srv.URL+"/t/BAD%00/scim/v2/Users", ""))
		})
		t.Run("a deleted token stops working", func(t *testing.T) {
			h := h.with(t)
			if err := h.st.DeleteSCIMToken(context.Background(), otherTenant, tokenName); err != nil {
				t.Fatal(err)
			}
			h.mustError(http.StatusUnauthorized, "", h.doURL("GET", h.srv.URL+BasePath(otherTenant)+"/Users", "", "Authorization", "Bearer "+h.otherToken))
		})
	})
}
