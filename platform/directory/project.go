package directory

import (
	"strings"

	"github.com/scim2/filter-parser/v2"
)

// projection is the attributes / excludedAttributes of a request
// (RFC 7644 §3.9): which attributes a response carries.
type projection struct {
	only    bool // attributes was given: only id, schemas and include
	include []selector
	exclude []selector
}

// selector names what one entry of an attribute list selects: a whole
// extension, an attribute, one of its sub-attributes, and for a
// multi-valued attribute optionally only the elements a filter matches
// (emails[type eq "work"], which Microsoft's tests send).
type selector struct {
	ext    *schema // the extension holding the attribute, or the whole extension when a is nil
	a      *attr
	sub    *attr
	filter filter.Expression
}

func parseProjection(rt *resourceType, attributes, excluded string) (*projection, error) {
	var p projection
	var err error
	if p.include, err = parseSelectors(rt, attributes, "attributes"); err != nil {
		return nil, err
	}
	p.only = strings.TrimSpace(attributes) != ""
	if p.exclude, err = parseSelectors(rt, excluded, "excludedAttributes"); err != nil {
		return nil, err
	}
	return &p, nil
}

// parseSelectors parses a comma-separated attribute list. Unknown
// attributes select nothing; they are not an error.
func parseSelectors(rt *resourceType, list, param string) ([]selector, error) {
	if len(list) > maxFilterBytes {
		return nil, badRequest(scimInvalidValue, "%s is longer than %d bytes", param, maxFilterBytes)
	}
	var out []selector
	for _, item := range splitList(list) {
		if ext := rt.extension(item); ext != nil {
			out = append(out, selector{ext: ext})
			continue
		}
		path, ok := parsePath(item)
		if !ok {
			return nil, badRequest(scimInvalidValue, "%s: %.200q is not an attribute path", param, item)
		}
		ext, a := rt.lookup(path.AttributePath.URI(), path.AttributePath.AttributeName)
		if a == nil {
			continue
		}
		s := selector{ext: ext, a: a}
		subName := path.AttributePath.SubAttributeName()
		if subName == "" {
			subName = path.SubAttributeName()
		}
		if subName != "" {
			if s.sub = a.sub(subName); s.sub == nil {
				continue
			}
		}
		if path.ValueExpression != nil {
			if !a.Multi || a.Type != typeComplex {
				return nil, badRequest(scimInvalidValue, "%s: %s takes no [filter]", param, a.Name)
			}
			if err := checkExpr(scope{parent: a}, path.ValueExpression); err != nil {
				return nil, err
			}
			s.filter = path.ValueExpression
		}
		out = append(out, s)
	}
	return out, nil
}

// splitList splits on commas outside double quotes, so that a filter
// value may hold a comma.
func splitList(s string) []string {
	var (
		out     []string
		start   int
		inQuote bool
	)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if inQuote {
				i++
			}
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				out = appendTrimmed(out, s[start:i])
				start = i + 1
			}
		}
	}
	return appendTrimmed(out, s[start:])
}

func appendTrimmed(out []string, s string) []string {
	if s = strings.TrimSpace(s); s != "" {
		out = append(out, s)
	}
	return out
}

// apply returns the projected representation of a rendered resource.
// id and schemas are always returned (RFC 7643 §3.1: returned "always").
func (p *projection) apply(doc map[string]any) map[string]any {
	if p == nil || (!p.only && len(p.exclude) == 0) {
		return doc
	}
	out := doc
	if p.only {
		out = map[string]any{"id": doc["id"], "schemas": doc["schemas"]}
		for _, s := range p.include {
			s.copy(out, doc)
		}
	} else {
		out = deepCopy(doc).(map[string]any)
	}
	for _, s := range p.exclude {
		s.remove(out)
	}
	return out
}

func containerOf(doc map[string]any, ext *schema, create bool) map[string]any {
	if ext == nil {
		return doc
	}
	c, _ := doc[ext.ID].(map[string]any)
	if c == nil && create {
		c = map[string]any{}
		doc[ext.ID] = c
	}
	return c
}

// copy adds what s selects from src to out.
func (s selector) copy(out, src map[string]any) {
	if s.a == nil {
		if v, ok := src[s.ext.ID]; ok {
			out[s.ext.ID] = deepCopy(v)
		}
		return
	}
	from := containerOf(src, s.ext, false)
	if from == nil || from[s.a.Name] == nil {
		return
	}
	v := from[s.a.Name]
	to := containerOf(out, s.ext, true)
	if s.ext != nil {
		defer func() {
			if len(to) == 0 {
				delete(out, s.ext.ID)
			}
		}()
	}
	if !s.a.Multi {
		if s.sub == nil {
			to[s.a.Name] = deepCopy(v)
			return
		}
		m, _ := v.(map[string]any)
		if sv, ok := m[s.sub.Name]; ok {
			dst, _ := to[s.a.Name].(map[string]any)
			if dst == nil {
				dst = map[string]any{}
				to[s.a.Name] = dst
			}
			dst[s.sub.Name] = deepCopy(sv)
		}
		return
	}
	// Multi-valued: copy the selected elements, or their selected sub,
	// merging with what an earlier selector of the same attribute copied.
	var kept []any
	for _, el := range asList(v) {
		m, _ := el.(map[string]any)
		if s.filter != nil && (m == nil || !matches(scope{parent: s.a}, s.filter, m)) {
			continue
		}
		if s.sub != nil {
			sv, ok := m[s.sub.Name]
			if !ok {
				continue
			}
			el = map[string]any{s.sub.Name: sv}
		}
		kept = append(kept, deepCopy(el))
	}
	if len(kept) > 0 {
		to[s.a.Name] = append(asList(to[s.a.Name]), kept...)
	}
}

// remove deletes what s selects from out, which it owns.
func (s selector) remove(out map[string]any) {
	if s.a == nil {
		delete(out, s.ext.ID)
		return
	}
	if s.ext == nil && (s.a.Name == "id") {
		return // returned always
	}
	c := containerOf(out, s.ext, false)
	if c == nil {
		return
	}
	defer func() {
		if s.ext != nil && len(c) == 0 {
			delete(out, s.ext.ID)
		}
	}()
	if s.sub == nil && s.filter == nil {
		delete(c, s.a.Name)
		return
	}
	if !s.a.Multi {
		if m, ok := c[s.a.Name].(map[string]any); ok {
			delete(m, s.sub.Name)
			putOrDelete(c, s.a.Name, m)
		}
		return
	}
	var kept []any
	for _, el := range asList(c[s.a.Name]) {
		m, _ := el.(map[string]any)
		if s.filter != nil && (m == nil || !matches(scope{parent: s.a}, s.filter, m)) {
			kept = append(kept, el)
			continue
		}
		if s.sub != nil && m != nil {
			delete(m, s.sub.Name)
			if len(m) > 0 {
				kept = append(kept, m)
			}
		}
	}
	putList(c, s.a.Name, kept)
}
