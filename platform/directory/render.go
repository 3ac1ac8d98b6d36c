package directory

import (
	"maps"
	"strconv"
	"strings"
	"time"
)

// timeLayout is RFC 3339 with milliseconds in UTC: finer than seconds so
// that "meta.lastModified gt" after a read does not miss a change made in
// the same second.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// etag is the entity tag of a version: weak, since the representation
// varies with attributes/excludedAttributes.
func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

// etagMatches reports whether an If-Match or If-None-Match header value
// names version: "*" or a list of tags, compared weakly (RFC 9110 §8.8.3.2).
func etagMatches(header string, version int64) bool {
	want := strconv.FormatInt(version, 10)
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" {
			return true
		}
		tag = strings.TrimPrefix(tag, "W/")
		if len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"' && tag[1:len(tag)-1] == want {
			return true
		}
	}
	return false
}

// render returns the full representation of a record: its attributes
// plus id, schemas and meta. The result shares nested values with r.doc;
// callers must not modify them.
func (q *request) render(rt *resourceType, r *record) map[string]any {
	out := maps.Clone(r.doc)
	out["id"] = r.id
	schemas := []any{rt.Core.ID}
	for _, e := range rt.Extensions {
		if _, ok := r.doc[e.ID]; ok {
			schemas = append(schemas, e.ID)
		}
	}
	out["schemas"] = schemas
	loc := q.location(rt, r.id)
	out["meta"] = map[string]any{
		"resourceType": rt.Name,
		"created":      formatTime(r.created),
		"lastModified": formatTime(r.updated),
		"location":     loc,
		"version":      etag(r.version),
	}
	if rt == groupType {
		// Members are stored as ids; give each its reference and type.
		if list, ok := r.doc["members"].([]any); ok {
			members := make([]any, len(list))
			for i, m := range list {
				id, _ := m.(map[string]any)["value"].(string)
				members[i] = map[string]any{"value": id, "$ref": q.location(userType, id), "type": "User"}
			}
			out["members"] = members
		}
	}
	return out
}
