package directory

import (
	"net/http"
	"strings"
)

// The discovery endpoints (RFC 7644 §4) are built from the same schema
// definitions that validate writes, so they cannot drift from behaviour.

func (q *request) serviceProviderConfig() error {
	writeJSON(q.w, http.StatusOK, map[string]any{
		"schemas":          []string{schemaSPConfig},
		"documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
		"patch":            map[string]any{"supported": true},
		"bulk":             map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": q.s.opts.MaxBodyBytes},
		"filter":           map[string]any{"supported": true, "maxResults": q.s.opts.MaxResults},
		"changePassword":   map[string]any{"supported": false},
		"sort":             map[string]any{"supported": false},
		"etag":             map[string]any{"supported": true},
		"authenticationSchemes": []any{map[string]any{
			"type":        "oauthbearertoken",
			"name":        "Bearer token",
			"description": "a SCIM token of the tenant, issued by its administrator, in Authorization: Bearer",
			"primary":     true,
		}},
		"meta": map[string]any{
			"resourceType": "ServiceProviderConfig",
			"location":     q.base + "/ServiceProviderConfig",
		},
	})
	return nil
}

func (q *request) resourceTypes(id string) error {
	var found []any
	for _, rt := range resourceTypes {
		if id == "" || strings.EqualFold(id, rt.Name) {
			found = append(found, q.resourceTypeJSON(rt))
		}
	}
	return q.discoveryAnswer(id, "ResourceType", found)
}

func (q *request) resourceTypeJSON(rt *resourceType) map[string]any {
	exts := []any{}
	for _, e := range rt.Extensions {
		exts = append(exts, map[string]any{"schema": e.ID, "required": false})
	}
	return map[string]any{
		"schemas":          []string{schemaResType},
		"id":               rt.Name,
		"name":             rt.Name,
		"description":      rt.Core.Description,
		"endpoint":         rt.Endpoint,
		"schema":           rt.Core.ID,
		"schemaExtensions": exts,
		"meta": map[string]any{
			"resourceType": "ResourceType",
			"location":     q.base + "/ResourceTypes/" + rt.Name,
		},
	}
}

func (q *request) schemas(id string) error {
	var found []any
	for _, s := range []*schema{userSchema, enterpriseSchema, groupSchema} {
		if id == "" || strings.EqualFold(id, s.ID) {
			found = append(found, q.schemaJSON(s))
		}
	}
	return q.discoveryAnswer(id, "Schema", found)
}

// discoveryAnswer answers a discovery collection (a ListResponse) or one of
// its members by id.
func (q *request) discoveryAnswer(id, kind string, found []any) error {
	if id != "" {
		if len(found) == 0 {
			return notFound(kind, id)
		}
		writeJSON(q.w, http.StatusOK, found[0])
		return nil
	}
	writeJSON(q.w, http.StatusOK, map[string]any{
		"schemas":      []string{schemaList},
		"totalResults": len(found),
		"startIndex":   1,
		"itemsPerPage": len(found),
		"Resources":    found,
	})
	return nil
}

func (q *request) schemaJSON(s *schema) map[string]any {
	attrs := make([]any, len(s.Attrs))
	for i, a := range s.Attrs {
		attrs[i] = attrJSON(a)
	}
	return map[string]any{
		"schemas":     []string{schemaSchema},
		"id":          s.ID,
		"name":        s.Name,
		"description": s.Description,
		"attributes":  attrs,
		"meta": map[string]any{
			"resourceType": "Schema",
			"location":     q.base + "/Schemas/" + s.ID,
		},
	}
}

func attrJSON(a *attr) map[string]any {
	uniqueness := a.Uniqueness
	if uniqueness == "" {
		uniqueness = "none"
	}
	m := map[string]any{
		"name":        a.Name,
		"type":        a.Type,
		"multiValued": a.Multi,
		"description": a.Description,
		"required":    a.Required,
		"caseExact":   a.CaseExact,
		"mutability":  "readWrite", // read-only attributes (id, meta) are in no schema
		"returned":    "default",
		"uniqueness":  uniqueness,
	}
	if len(a.Canonical) > 0 {
		m["canonicalValues"] = a.Canonical
	}
	if len(a.RefTypes) > 0 {
		m["referenceTypes"] = a.RefTypes
	}
	if len(a.Sub) > 0 {
		subs := make([]any, len(a.Sub))
		for i, sa := range a.Sub {
			subs[i] = attrJSON(sa)
		}
		m["subAttributes"] = subs
	}
	return m
}
