package directory

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func patchBody(ops string) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + ops + `]}`
}

// members returns a group's member ids as GET answers them, sorted.
func (h *harness) members(id string) []string {
	h.t.Helper()
	r := h.must(http.StatusOK, h.do("GET", "/Groups/"+id, ""))
	var out []string
	list, _ := r.body["members"].([]any)
	for _, m := range list {
		out = append(out, asString(field(m, "value")))
		if field(m, "type") != "User" || !strings.HasSuffix(asString(field(m, "$ref")), "/Users/"+asString(field(m, "value"))) {
			h.t.Errorf("member without type or $ref: %v", m)
		}
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestGroups(t *testing.T) {
	eachStore(t, func(t *testing.T, h *harness) {
		var u []string
		for i := range 4 {
			u = append(u, h.createUser(userBody(fmt.Sprintf("member%d@example.com", i))))
		}

		// OKTA "Verify Groups endpoint" on an empty directory.
		r := h.must(http.StatusOK, h.do("GET", "/Groups", ""))
		if num(t, r.body["totalResults"]) != 0 {
			t.Fatalf("empty: %s", r.raw)
		}

		// MSPM: POST an empty group (Okta's shape), and one with members.
		r = h.must(http.StatusCreated, h.do("POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Test SCIMv2","members":[]}`))
		empty := asString(r.body["id"])
		if r.body["displayName"] != "Test SCIMv2" || r.body["members"] != nil || field(r.body, "meta.resourceType") != "Group" {
			t.Errorf("empty group: %s", r.raw)
		}
		r = h.must(http.StatusCreated, h.do("POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
			"externalId":"8aa1a0c0","displayName":"Engineering","meta":{"resourceType":"Group"},
			"members":[{"value":"`+u[0]+`","display":"m0"},{"value":"`+u[1]+`"}]}`))
		g := asString(r.body["id"])
		if got := h.members(g); !slices.Equal(got, sorted(u[0], u[1])) {
			t.Errorf("members %v", got)
		}

		// MSLA #8: filter on displayName (case-insensitive), and the list.
		r = h.must(http.StatusOK, h.do("GET", "/Groups"+filterQuery(`displayName eq "engineering"`), ""))
		if got := ids(r); len(got) != 1 || got[0] != g {
			t.Errorf("displayName filter: %s", r.raw)
		}
		r = h.must(http.StatusOK, h.do("GET", "/Groups"+filterQuery(`externalId eq "8aa1a0c0"`), ""))
		if got := ids(r); len(got) != 1 || got[0] != g {
			t.Errorf("externalId filter: %s", r.raw)
		}
		// Entra ID's membership check.
		for member, want := range map[string]int{u[0]: 1, u[3]: 0} {
			r = h.must(http.StatusOK, h.do("GET", "/Groups"+filterQuery(`id eq "`+g+`" and members[value eq "`+member+`"]`)+"&excludedAttributes=members", ""))
			if num(t, r.body["totalResults"]) != want || field(r.body, "Resources.0.members") != nil {
				t.Errorf("membership of %s: %s", member, r.raw)
			}
		}
		r = h.must(http.StatusOK, h.do("GET", "/Groups", ""))
		if num(t, r.body["totalResults"]) != 2 || len(ids(r)) != 2 {
			t.Errorf("list: %s", r.raw)
		}

		// MSPM: excludedAttributes=members, as Entra ID asks.
		r = h.must(http.StatusOK, h.do("GET", "/Groups/"+g+"?excludedAttributes=members", ""))
		if r.body["members"] != nil || r.body["displayName"] != "Engineering" {
			t.Errorf("excludedAttributes=members: %s", r.raw)
		}
		r = h.must(http.StatusOK, h.do("GET", "/Groups"+filterQuery(`displayName eq "Engineering"`)+"&excludedAttributes=members", ""))
		if field(r.body, "Resources.0.members") != nil || field(r.body, "Resources.0.id") != g {
			t.Errorf("excludedAttributes=members on a list: %s", r.raw)
		}

		for _, step := range []struct {
			name, ops string
			want      []string
		}{
			{"okta add", `{"op":"add","path":"members","value":[{"value":"` + u[2] + `","display":"m2"}]}`, sorted(u[0], u[1], u[2])},
			{"entra Add with null $ref", `{"op":"Add","path":"members","value":[{"$ref":null,"value":"` + u[3] + `"}]}`, sorted(u...)},
			{"okta remove by filter", `{"op":"remove","path":"members[value eq \"` + u[0] + `\"]"}`, sorted(u[1], u[2], u[3])},
			{"entra Remove with value list", `{"op":"Remove","path":"members","value":[{"$ref":null,"value":"` + u[1] + `"}]}`, sorted(u[2], u[3])},
			{"okta replace the list", `{"op":"replace","path":"members","value":[{"value":"` + u[0] + `"},{"value":"` + u[1] + `"}]}`, sorted(u[0], u[1])},
			{"okta rename without path", `{"op":"replace","value":{"id":"` + g + `","displayName":"Platform Team"}}`, sorted(u[0], u[1])},
			{"MSPM remove all users", `{"op":"remove","path":"members"}`, nil},
			{"re-add", `{"op":"add","path":"members","value":[{"value":"` + u[2] + `"}]}`, sorted(u[2])},
		} {
			t.Run(step.name, func(t *testing.T) {
				h := h.with(t)
				r := h.must(http.StatusOK, h.do("PATCH", "/Groups/"+g, patchBody(step.ops)))
				if r.body["id"] != g {
					t.Errorf("PATCH answers the group: %s", r.raw)
				}
				if got := h.members(g); !slices.Equal(got, step.want) {
					t.Errorf("members %v, want %v", got, step.want)
				}
			})
		}
		if r := h.must(http.StatusOK, h.do("GET", "/Groups/"+g, "")); r.body["displayName"] != "Platform Team" {
			t.Errorf("rename: %s", r.raw)
		}

		// The store answers the token service's question.
		groups, err := h.st.GroupsOfUser(context.Background(), testTenant, u[2])
		if err != nil || len(groups) != 1 || groups[0].ID != g {
			t.Errorf("GroupsOfUser = %v, %v", groups, err)
		}

		// ELIM azuread/update_group.json: rename, add and remove in one PATCH.
		r = h.must(http.StatusOK, h.do("PATCH", "/Groups/"+g, patchBody(`
			{"op":"Replace","path":"displayName","value":"1879db59updatedDisplayName"},
			{"op":"Add","path":"members","value":[{"$ref":null,"value":"`+u[3]+`"}]},
			{"op":"Remove","path":"members","value":[{"$ref":null,"value":"`+u[3]+`"}]}`)))
		if r.body["displayName"] != "1879db59updatedDisplayName" {
			t.Errorf("combined PATCH: %s", r.raw)
		}
		if got := h.members(g); !slices.Equal(got, sorted(u[2])) {
			t.Errorf("members after combined PATCH %v", got)
		}

		// PUT replaces, members included.
		r = h.must(http.StatusOK, h.do("PUT", "/Groups/"+g, `{"displayName":"Platform","members":[{"value":"`+u[0]+`"}]}`))
		if got := h.members(g); !slices.Equal(got, sorted(u[0])) || r.body["externalId"] != nil {
			t.Errorf("after PUT: %v %s", got, r.raw)
		}

		// Errors.
		h.mustError(http.StatusConflict, scimUniqueness, h.do("POST", "/Groups", `{"displayName":"PLATFORM"}`))
		h.mustError(http.StatusConflict, scimUniqueness, h.do("PATCH", "/Groups/"+empty, patchBody(`{"op":"replace","path":"displayName","value":"platform"}`)))
		h.mustError(http.StatusBadRequest, scimInvalidValue, h.do("POST", "/Groups", `{"displayName":"Ghosts","members":[{"value":"no-such-user"}]}`))
		h.mustError(http.StatusBadRequest, scimInvalidValue, h.do("PATCH", "/Groups/"+g, patchBody(`{"op":"add","path":"members","value":[{"value":"no-such-user"}]}`)))
		h.mustError(http.StatusBadRequest, scimInvalidValue, h.do("PATCH", "/Groups/"+g, patchBody(`{"op":"add","path":"members","value":[{"value":"`+empty+`","type":"Group"}]}`)))
		h.mustError(http.StatusBadRequest, scimInvalidValue, h.do("POST", "/Groups", `{"members":[]}`))
		h.mustError(http.StatusNotFound, "", h.do("GET", "/Groups/"+u[0], "")) // a user id is not a group id
		if got := h.members(g); !slices.Equal(got, sorted(u[0])) {
			t.Errorf("members changed by failed requests: %v", got)
		}

		// Deleting a member user removes it from the group.
		h.must(http.StatusNoContent, h.do("DELETE", "/Users/"+u[0], ""))
		if got := h.members(g); len(got) != 0 {
			t.Errorf("deleted user still a member: %v", got)
		}

		// MSPM: DELETE 204, then 404.
		h.must(http.StatusNoContent, h.do("DELETE", "/Groups/"+g, ""))
		h.mustError(http.StatusNotFound, "", h.do("GET", "/Groups/"+g, ""))
		h.mustError(http.StatusNotFound, "", h.do("PATCH", "/Groups/"+g, patchBody(`{"op":"remove","path":"members"}`)))
		r = h.must(http.StatusOK, h.do("GET", "/Groups"+filterQuery(`displayName eq "Platform"`), ""))
		if num(t, r.body["totalResults"]) != 0 {
			t.Errorf("deleted group listed: %s", r.raw)
		}

		acts := strings.Join(h.auditActions(), " ")
		for _, want := range []string{"scim.group.create", "scim.group.patch", "scim.group.replace", "scim.group.delete"} {
			if !strings.Contains(acts, want) {
				t.Errorf("audit lacks %s: %s", want, acts)
			}
		}
	})
}

// TestGroupConcurrentPatches: Entra ID sends membership PATCHes to one
// group in parallel; each must land (retried on a version conflict).
func TestGroupConcurrentPatches(t *testing.T) {
	eachStore(t, func(t *testing.T, h *harness) {
		g := h.createGroup(`{"displayName":"Busy"}`)
		const n = 8
		users := make([]string, n)
		for i := range users {
			users[i] = h.createUser(userBody(fmt.Sprintf("busy%d@example.com", i)))
		}
		errs := make(chan string, n)
		for _, u := range users {
			go func() {
				r, err := h.send("PATCH", h.base()+"/Groups/"+g, patchBody(`{"op":"add","path":"members","value":[{"value":"`+u+`"}]}`))
				if err != nil {
					errs <- err.Error()
					return
				}
				if r.status != http.StatusOK {
					errs <- fmt.Sprintf("%d %s", r.status, r.raw)
					return
				}
				errs <- ""
			}()
		}
		for range users {
			if e := <-errs; e != "" {
				t.Error(e)
			}
		}
		if got := h.members(g); !slices.Equal(got, sorted(users...)) {
			t.Errorf("members %v, want all %d", got, n)
		}
	})
}
