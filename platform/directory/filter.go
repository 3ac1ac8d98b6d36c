package directory

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scim2/filter-parser/v2"
)

// parseFilter parses and checks a SCIM filter (RFC 7644 §3.4.2.2) for
// resources of type rt. Attribute names are case-insensitive; string
// values are JSON strings, unescaped here since the parser keeps escapes.
// Attributes we do not know are allowed (they match nothing), but
// comparisons RFC 7644 forbids, such as "gt" on a boolean, are refused
// with invalidFilter.
func parseFilter(rt *resourceType, raw string) (filter.Expression, error) {
	if len(raw) > maxFilterBytes {
		return nil, badRequest(scimInvalidFilter, "the filter is longer than %d bytes", maxFilterBytes)
	}
	if !utf8.ValidString(raw) || strings.ContainsRune(raw, 0) {
		// Values reach the store's query; PostgreSQL refuses both.
		return nil, badRequest(scimInvalidFilter, "the filter must be UTF-8 text without NUL characters")
	}
	if nesting(raw) > maxFilterNesting {
		return nil, badRequest(scimInvalidFilter, "the filter nests more than %d brackets", maxFilterNesting)
	}
	expr, err := filter.ParseFilterNumber([]byte(raw))
	if err != nil {
		return nil, badRequest(scimInvalidFilter, "the filter %q is not valid SCIM filter syntax (for example: userName eq \"jo@example.com\")", raw)
	}
	if err := checkExpr(scope{rt: rt}, expr); err != nil {
		return nil, err
	}
	return expr, nil
}

// parsePath parses an attribute path (PATCH paths, attribute lists). The
// parser's time grows faster than linearly with nesting, hence the bound.
func parsePath(raw string) (filter.Path, bool) {
	// A path has at most one [filter]; its filter is short.
	if len(raw) > maxFilterBytes || nesting(raw) > maxPathNesting {
		return filter.Path{}, false
	}
	p, err := filter.ParsePathNumber([]byte(raw))
	return p, err == nil
}

// Bounds on the brackets, ( and [, of a filter and of a path. The parser
// backtracks, and its time grows with nesting; real filters nest a few.
const (
	maxFilterNesting = 32
	maxPathNesting   = 8
)

// nesting counts the opening brackets of s outside string values.
func nesting(s string) int {
	n, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == '(' || c == '['):
			n++
		}
	}
	return n
}

// scope is where attribute names of a filter resolve: at a resource's top
// level (rt) or, inside a value filter such as emails[type eq "work"],
// among the sub-attributes of parent.
type scope struct {
	rt     *resourceType
	parent *attr
}

// def returns the definition of the attribute a path names, or nil when
// the attribute is unknown.
func (sc scope) def(p filter.AttributePath) *attr {
	var a *attr
	if sc.parent != nil {
		if p.URI() != "" {
			return nil
		}
		a = sc.parent.sub(p.AttributeName)
	} else {
		_, a = sc.rt.lookup(p.URI(), p.AttributeName)
	}
	if a == nil || p.SubAttribute == nil {
		return a
	}
	return a.sub(p.SubAttributeName())
}

// values returns the values a path names in doc, flattened over
// multi-valued attributes, with the definition of the leaf attribute.
func (sc scope) values(p filter.AttributePath, doc map[string]any) (*attr, []any) {
	var (
		a         *attr
		container = doc
	)
	if sc.parent != nil {
		if p.URI() != "" {
			return nil, nil
		}
		a = sc.parent.sub(p.AttributeName)
	} else {
		var ext *schema
		ext, a = sc.rt.lookup(p.URI(), p.AttributeName)
		if ext != nil {
			container, _ = doc[ext.ID].(map[string]any)
		}
	}
	if a == nil || container == nil {
		return nil, nil
	}
	vals := flatten(container[a.Name])
	if p.SubAttribute == nil {
		return a, vals
	}
	sa := a.sub(p.SubAttributeName())
	if sa == nil {
		return nil, nil
	}
	var out []any
	for _, v := range vals {
		if m, ok := v.(map[string]any); ok {
			out = append(out, flatten(m[sa.Name])...)
		}
	}
	return sa, out
}

func flatten(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	}
	return []any{v}
}

// checkExpr validates expr in sc and unescapes its string values in place.
func checkExpr(sc scope, expr filter.Expression) error {
	switch e := expr.(type) {
	case *filter.LogicalExpression:
		if err := checkExpr(sc, e.Left); err != nil {
			return err
		}
		return checkExpr(sc, e.Right)
	case *filter.NotExpression:
		return checkExpr(sc, e.Expression)
	case *filter.ValuePath:
		a := sc.def(e.AttributePath)
		if a == nil {
			// Unknown: matches nothing, but its inner filter must still be sane.
			a = &attr{Name: e.AttributePath.AttributeName, Type: typeComplex}
		}
		if a.Type != typeComplex {
			return badRequest(scimInvalidFilter, "%s is not a complex attribute; it takes no [filter]", e.AttributePath)
		}
		return checkExpr(scope{parent: a}, e.ValueFilter)
	case *filter.AttributeExpression:
		return checkAttrExpr(sc, e)
	}
	return badRequest(scimInvalidFilter, "unsupported filter expression")
}

func checkAttrExpr(sc scope, e *filter.AttributeExpression) error {
	if s, ok := e.CompareValue.(string); ok {
		var u string
		if json.Unmarshal([]byte(`"`+s+`"`), &u) == nil {
			e.CompareValue = u
		}
		if strings.ContainsRune(u, 0) || !utf8.ValidString(u) {
			return badRequest(scimInvalidFilter, "filter values must be UTF-8 text without NUL characters")
		}
	}
	a := sc.def(e.AttributePath)
	if a != nil && a.hasValueSub() {
		a = a.sub("value") // "emails co x" compares emails.value
	}
	switch e.Operator {
	case filter.PR:
		return nil
	case filter.EQ, filter.NE:
	case filter.CO, filter.SW, filter.EW:
		if _, ok := e.CompareValue.(string); !ok {
			return badRequest(scimInvalidFilter, "%s needs a string value", e.Operator)
		}
	case filter.GT, filter.GE, filter.LT, filter.LE:
		switch e.CompareValue.(type) {
		case string, json.Number:
		default:
			return badRequest(scimInvalidFilter, "%s needs a string, number or date-time value", e.Operator)
		}
	default:
		return badRequest(scimInvalidFilter, "unknown operator %q", e.Operator)
	}
	if a == nil {
		return nil
	}
	switch a.Type {
	case typeBoolean:
		if e.Operator != filter.EQ && e.Operator != filter.NE {
			return badRequest(scimInvalidFilter, "%s is a boolean; compare it with eq or ne", e.AttributePath)
		}
	case typeDateTime:
		if s, ok := e.CompareValue.(string); ok {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return badRequest(scimInvalidFilter, "%s is a date-time; compare it with an RFC 3339 value such as \"2024-01-02T15:04:05Z\"", e.AttributePath)
			}
		}
	case typeComplex:
		return badRequest(scimInvalidFilter, "%s is complex; compare one of its sub-attributes", e.AttributePath)
	}
	return nil
}

// matches evaluates a checked expression against a resource document.
func matches(sc scope, expr filter.Expression, doc map[string]any) bool {
	switch e := expr.(type) {
	case *filter.LogicalExpression:
		if e.Operator == filter.AND {
			return matches(sc, e.Left, doc) && matches(sc, e.Right, doc)
		}
		return matches(sc, e.Left, doc) || matches(sc, e.Right, doc)
	case *filter.NotExpression:
		return !matches(sc, e.Expression, doc)
	case *filter.ValuePath:
		a, elems := sc.values(e.AttributePath, doc)
		if a == nil {
			return false
		}
		inner := scope{parent: a}
		for _, el := range elems {
			if m, ok := el.(map[string]any); ok && matches(inner, e.ValueFilter, m) {
				return true
			}
		}
		return false
	case *filter.AttributeExpression:
		a, vals := sc.values(e.AttributePath, doc)
		if a != nil && a.hasValueSub() {
			var inner []any
			for _, v := range vals {
				if m, ok := v.(map[string]any); ok && m["value"] != nil {
					inner = append(inner, m["value"])
				}
			}
			a, vals = a.sub("value"), inner
		}
		switch e.Operator {
		case filter.PR:
			return len(vals) > 0
		case filter.NE:
			for _, v := range vals {
				if compare(a, filter.EQ, v, e.CompareValue) {
					return false
				}
			}
			return true
		}
		for _, v := range vals {
			if compare(a, e.Operator, v, e.CompareValue) {
				return true
			}
		}
	}
	return false
}

// compare applies op to one attribute value v and the filter's value cv.
// Strings compare case-insensitively unless the attribute is caseExact
// (unknown attributes: insensitively); date-times chronologically.
func compare(a *attr, op filter.CompareOperator, v, cv any) bool {
	switch v := v.(type) {
	case string:
		c, ok := cv.(string)
		if !ok {
			return false
		}
		if a != nil && a.Type == typeDateTime {
			return compareTimes(op, v, c)
		}
		if a == nil || !a.CaseExact {
			v, c = strings.ToLower(v), strings.ToLower(c)
		}
		return compareOrdered(op, strings.Compare(v, c), func() bool {
			switch op {
			case filter.CO:
				return strings.Contains(v, c)
			case filter.SW:
				return strings.HasPrefix(v, c)
			case filter.EW:
				return strings.HasSuffix(v, c)
			}
			return false
		})
	case bool:
		c, ok := cv.(bool)
		return ok && op == filter.EQ && v == c
	case json.Number:
		c, ok := cv.(json.Number)
		if !ok {
			return false
		}
		x, err1 := v.Float64()
		y, err2 := c.Float64()
		if err1 != nil || err2 != nil {
			return false
		}
		cmp := 0
		if x < y {
			cmp = -1
		} else if x > y {
			cmp = 1
		}
		return compareOrdered(op, cmp, func() bool { return false })
	}
	return false
}

// compareOrdered answers eq, gt, ge, lt and le from a three-way comparison,
// and defers the other operators to other.
func compareOrdered(op filter.CompareOperator, cmp int, other func() bool) bool {
	switch op {
	case filter.EQ:
		return cmp == 0
	case filter.GT:
		return cmp > 0
	case filter.GE:
		return cmp >= 0
	case filter.LT:
		return cmp < 0
	case filter.LE:
		return cmp <= 0
	}
	return other()
}

func compareTimes(op filter.CompareOperator, v, c string) bool {
	tv, err1 := time.Parse(time.RFC3339Nano, v)
	tc, err2 := time.Parse(time.RFC3339Nano, c)
	if err1 != nil || err2 != nil {
		return false
	}
	return compareOrdered(op, tv.Compare(tc), func() bool { return false })
}

// pushdown finds an equality the store can answer (ListQuery): the filter
// is, or is a conjunction containing, `attr eq "string"` on an indexed
// attribute of rt. whole reports that the equality is the entire filter,
// so that the store's answer needs no further evaluation.
func pushdown(rt *resourceType, expr filter.Expression) (attrName, value string, whole, ok bool) {
	if name, value, ok := indexedEq(rt, expr); ok {
		return name, value, true, true
	}
	for _, c := range conjuncts(expr) {
		if name, value, ok := indexedEq(rt, c); ok {
			return name, value, false, true
		}
	}
	return "", "", false, false
}

// idEq returns the id of a filter that is exactly `id eq "…"`.
func idEq(expr filter.Expression) (string, bool) {
	e, ok := expr.(*filter.AttributeExpression)
	if !ok || e.Operator != filter.EQ || e.AttributePath.SubAttribute != nil || e.AttributePath.URI() != "" ||
		!strings.EqualFold(e.AttributePath.AttributeName, "id") {
		return "", false
	}
	v, ok := e.CompareValue.(string)
	return v, ok
}

func indexedEq(rt *resourceType, expr filter.Expression) (string, string, bool) {
	e, ok := expr.(*filter.AttributeExpression)
	if !ok || e.Operator != filter.EQ || e.AttributePath.SubAttribute != nil {
		return "", "", false
	}
	if uri := e.AttributePath.URI(); uri != "" && !strings.EqualFold(uri, rt.Core.ID) {
		return "", "", false
	}
	v, ok := e.CompareValue.(string)
	if !ok {
		return "", "", false
	}
	for _, name := range rt.Indexed {
		if strings.EqualFold(name, e.AttributePath.AttributeName) {
			return name, v, true
		}
	}
	return "", "", false
}

func conjuncts(expr filter.Expression) []filter.Expression {
	if e, ok := expr.(*filter.LogicalExpression); ok && e.Operator == filter.AND {
		return append(conjuncts(e.Left), conjuncts(e.Right)...)
	}
	return []filter.Expression{expr}
}
