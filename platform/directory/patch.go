package directory

import (
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/scim2/filter-parser/v2"
)

// PATCH operations (RFC 7644 §3.5.2).
const (
	opAdd     = "add"
	opRemove  = "remove"
	opReplace = "replace"
)

type patchOp struct {
	op       string // lower case
	path     string
	value    any
	hasValue bool
}

// parsePatch reads a PatchOp body. It is lenient where IdPs differ and
// RFC 7644 is not at stake: op names in any case ("Replace", as Entra ID
// sends them), member names in any case, a missing "schemas".
func parsePatch(body []byte) ([]patchOp, error) {
	m, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	var rawOps any
	for k, v := range m {
		switch {
		case strings.EqualFold(k, "schemas"):
			list, ok := v.([]any)
			if !ok || !slices.ContainsFunc(list, func(s any) bool { return s == schemaPatchOp }) {
				return nil, badRequest(scimInvalidSyntax, "schemas must be [%q]", schemaPatchOp)
			}
		case strings.EqualFold(k, "Operations"):
			rawOps = v
		}
	}
	list, ok := rawOps.([]any)
	if !ok || len(list) == 0 {
		return nil, badRequest(scimInvalidSyntax, "a PATCH body needs Operations: a list of one or more operations")
	}
	if len(list) > maxOperations {
		return nil, badRequest(scimTooMany, "a PATCH may hold at most %d operations", maxOperations)
	}
	ops := make([]patchOp, 0, len(list))
	for i, raw := range list {
		o, ok := raw.(map[string]any)
		if !ok {
			return nil, badRequest(scimInvalidSyntax, "operation %d is not an object", i+1)
		}
		var p patchOp
		for k, v := range o {
			switch {
			case strings.EqualFold(k, "op"):
				s, _ := v.(string)
				p.op = strings.ToLower(s)
			case strings.EqualFold(k, "path"):
				if v == nil {
					continue
				}
				s, ok := v.(string)
				if !ok {
					return nil, badRequest(scimInvalidPath, "operation %d: path must be a string", i+1)
				}
				p.path = strings.TrimSpace(s)
			case strings.EqualFold(k, "value"):
				p.value, p.hasValue = v, true
			}
		}
		switch p.op {
		case opAdd, opReplace:
		case opRemove:
			if p.path == "" {
				return nil, badRequest(scimNoTarget, "operation %d: remove needs a path", i+1)
			}
		default:
			return nil, badRequest(scimInvalidSyntax, "operation %d: op must be add, remove or replace", i+1)
		}
		ops = append(ops, p)
	}
	return ops, nil
}

// patcher applies operations to a copy of a resource document.
type patcher struct {
	rt      *resourceType
	id      string
	doc     map[string]any
	touched map[string]bool // top-level attributes an operation targeted
}

// applyPatch applies ops, in order, to a deep copy of doc and returns it
// with the names of the attributes the operations targeted. It follows
// RFC 7644 §3.5.2 with the leniency Entra ID and Okta need:
//
//   - Unknown attributes and sub-attributes are ignored, not refused.
//   - A null or empty value clears the attribute.
//   - replace (or add) through a value filter that matches nothing, such
//     as emails[type eq "work"].value on a user without a work email,
//     adds an element built from the filter's equalities, as Entra ID
//     expects; when the filter has none to build from it fails noTarget.
//   - remove through a filter that matches nothing succeeds, so that
//     repeating a membership removal is harmless.
//   - remove with a value list on a multi-valued attribute removes those
//     values (Entra ID's member removal).
//   - id may be "set" to its current value (Okta sends it); any other
//     value fails with mutability. meta and schemas are ignored.
func applyPatch(rt *resourceType, id string, doc map[string]any, ops []patchOp) (map[string]any, map[string]bool, error) {
	p := &patcher{rt: rt, id: id, doc: deepCopy(doc).(map[string]any), touched: map[string]bool{}}
	for i, o := range ops {
		if err := p.apply(o); err != nil {
			if e, ok := err.(*Error); ok {
				e.Detail = "operation " + strconv.Itoa(i+1) + ": " + e.Detail
			}
			return nil, nil, err
		}
	}
	return p.doc, p.touched, nil
}

func (p *patcher) apply(o patchOp) error {
	if ext := p.rt.extension(o.path); ext != nil {
		// The path is a whole extension: its value holds its attributes.
		if o.op == opRemove {
			delete(p.doc, ext.ID)
			p.touched[ext.ID] = true
			return nil
		}
		return p.applyObject(o, ext)
	}
	if o.path == "" {
		return p.applyObject(o, nil)
	}
	path, ok := parsePath(o.path)
	if !ok {
		return badRequest(scimInvalidPath, "path %.200q is not a valid attribute path", o.path)
	}
	return p.applyPath(o.op, path, o.value, o.hasValue)
}

// applyObject applies an add or replace without a path (or with an
// extension's URN as path): each member of the value names an attribute,
// possibly by a full path such as "name.familyName" or
// `emails[type eq "work"].value`, as Entra ID and Okta send them.
func (p *patcher) applyObject(o patchOp, ext *schema) error {
	obj, ok := o.value.(map[string]any)
	if !ok {
		return badRequest(scimInvalidValue, "without a path, the value must be an object of attributes")
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		v := obj[k]
		if ext == nil {
			if e := p.rt.extension(k); e != nil {
				if err := p.applyObject(patchOp{op: o.op, value: v, hasValue: true}, e); err != nil {
					return err
				}
				continue
			}
		} else {
			k = ext.ID + ":" + k
		}
		path, ok := parsePath(k)
		if !ok {
			return badRequest(scimInvalidPath, "attribute %.200q is not a valid attribute path", k)
		}
		if err := p.applyPath(o.op, path, v, true); err != nil {
			return err
		}
	}
	return nil
}

func (p *patcher) applyPath(op string, path filter.Path, value any, hasValue bool) error {
	ap := path.AttributePath
	ext, a := p.rt.lookup(ap.URI(), ap.AttributeName)
	if a == nil {
		return nil // unknown attribute: ignored, as Entra ID expects
	}
	switch {
	case strings.EqualFold(a.Name, "id"):
		if s, _ := value.(string); op != opRemove && s == p.id {
			return nil
		}
		return &Error{Status: 400, ScimType: scimMutability, Detail: "id is read-only"}
	case findAttr(commonAttrs, a.Name) == a:
		return nil // meta: read-only, ignored
	}
	container := p.doc
	if ext != nil {
		c, _ := p.doc[ext.ID].(map[string]any)
		if c == nil {
			c = map[string]any{}
			p.doc[ext.ID] = c
		}
		container = c
		defer func() {
			if len(c) == 0 {
				delete(p.doc, ext.ID)
			}
		}()
		p.touched[ext.ID+":"+a.Name] = true
	} else {
		p.touched[a.Name] = true
	}

	// The sub-attribute comes before a filter (name.familyName) or after
	// it (emails[type eq "work"].value); the grammar allows one or the other.
	var sub *attr
	if name := ap.SubAttributeName(); name != "" {
		if sub = a.sub(name); sub == nil {
			return nil
		}
	}
	if name := path.SubAttributeName(); name != "" {
		if sub = a.sub(name); sub == nil {
			return nil
		}
	}
	if path.ValueExpression != nil {
		return p.applyFiltered(op, container, a, path.ValueExpression, sub, value)
	}
	if sub != nil {
		return applySub(op, container, a, sub, value)
	}
	return applyWhole(op, container, a, value, hasValue)
}

// applyWhole applies op to attribute a itself.
func applyWhole(op string, container map[string]any, a *attr, value any, hasValue bool) error {
	if op == opRemove {
		if hasValue && value != nil && a.Multi {
			return removeValues(container, a, value)
		}
		delete(container, a.Name)
		return nil
	}
	nv, err := normalizeValue(a, value, a.Name)
	if err != nil {
		return err
	}
	switch {
	case nv == nil && a.Multi && op == opAdd:
		// Adding nothing to a list (members!) must not empty it.
	case nv == nil:
		delete(container, a.Name)
	case a.Multi && op == opAdd:
		container[a.Name] = appendUnique(a, asList(container[a.Name]), nv.([]any))
	case a.Multi:
		container[a.Name] = nv
	case a.Type == typeComplex:
		old, _ := container[a.Name].(map[string]any)
		container[a.Name] = mergeComplex(a, old, nv.(map[string]any), value)
	default:
		container[a.Name] = nv
	}
	return nil
}

// applySub applies op to sub-attribute sub of a, in every element when a
// is multi-valued (a path such as emails.value).
func applySub(op string, container map[string]any, a, sub *attr, value any) error {
	var nv any
	if op != opRemove {
		var err error
		if nv, err = normalizeValue(sub, value, a.Name+"."+sub.Name); err != nil {
			return err
		}
	}
	set := func(m map[string]any) {
		if nv == nil {
			delete(m, sub.Name)
		} else {
			m[sub.Name] = nv
		}
	}
	if !a.Multi {
		m, _ := container[a.Name].(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		set(m)
		putOrDelete(container, a.Name, m)
		return nil
	}
	list := asList(container[a.Name])
	if len(list) == 0 && nv != nil {
		list = []any{map[string]any{}}
	}
	for _, el := range list {
		if m, ok := el.(map[string]any); ok {
			set(m)
		}
	}
	putList(container, a.Name, list)
	return nil
}

// applyFiltered applies op to the elements of multi-valued a that expr
// selects, or to their sub-attribute sub.
func (p *patcher) applyFiltered(op string, container map[string]any, a *attr, expr filter.Expression, sub *attr, value any) error {
	if !a.Multi || a.Type != typeComplex {
		return badRequest(scimInvalidPath, "%s is not a multi-valued complex attribute; it takes no [filter]", a.Name)
	}
	sc := scope{parent: a}
	if err := checkExpr(sc, expr); err != nil {
		e := err.(*Error)
		e.ScimType = scimInvalidPath
		return e
	}
	list := asList(container[a.Name])
	var hits []int
	for i, el := range list {
		if m, ok := el.(map[string]any); ok && matches(sc, expr, m) {
			hits = append(hits, i)
		}
	}

	if op == opRemove {
		if sub == nil {
			list = deleteIndices(list, hits)
		} else {
			for _, i := range hits {
				delete(list[i].(map[string]any), sub.Name)
			}
		}
		putList(container, a.Name, dropEmpty(list))
		return nil
	}

	// add or replace: the new value of each selected element (or of its sub).
	var nv any
	var err error
	if sub != nil {
		nv, err = normalizeValue(sub, value, a.Name+"."+sub.Name)
	} else {
		nv, err = normalizeSingle(a, value, a.Name)
	}
	if err != nil {
		return err
	}
	if len(hits) == 0 {
		if nv == nil {
			return nil // clearing what is not there
		}
		el, ok := elementFromFilter(a, expr)
		if !ok {
			return &Error{Status: 400, ScimType: scimNoTarget,
				Detail: "the filter of " + a.Name + " matches no value, and has no equalities to build one from"}
		}
		list = append(list, el)
		hits = []int{len(list) - 1}
	}
	for _, i := range hits {
		m := list[i].(map[string]any)
		switch {
		case sub != nil && nv == nil:
			delete(m, sub.Name)
		case sub != nil:
			m[sub.Name] = nv
		case nv == nil:
			list[i] = nil
		default:
			list[i] = mergeComplex(a, m, nv.(map[string]any), value)
		}
	}
	putList(container, a.Name, dropEmpty(list))
	return nil
}

// elementFromFilter builds a new element from a filter made only of
// equalities joined by and, such as type eq "work".
func elementFromFilter(a *attr, expr filter.Expression) (map[string]any, bool) {
	el := map[string]any{}
	for _, c := range conjuncts(expr) {
		e, ok := c.(*filter.AttributeExpression)
		if !ok || e.Operator != filter.EQ || e.AttributePath.SubAttribute != nil || e.AttributePath.URI() != "" {
			return nil, false
		}
		sa := a.sub(e.AttributePath.AttributeName)
		if sa == nil {
			return nil, false
		}
		v, err := normalizeSingle(sa, e.CompareValue, a.Name+"."+sa.Name)
		if err != nil || v == nil {
			return nil, false
		}
		el[sa.Name] = v
	}
	return el, len(el) > 0
}

// mergeComplex merges the sub-attributes of nv into old (RFC 7644
// §3.5.2.3: sub-attributes not given are left unchanged), except that a
// null or empty sub-attribute in the raw value clears it, and a new
// "value" replaces the whole element: a manager with another id is
// another manager, whose old displayName must not linger.
func mergeComplex(a *attr, old, nv map[string]any, raw any) map[string]any {
	if old == nil || (nv["value"] != nil && !sameElement(a, old, nv)) {
		return nv
	}
	out := maps.Clone(old)
	maps.Copy(out, nv)
	if rm, ok := raw.(map[string]any); ok {
		for k, v := range rm {
			if s, isStr := v.(string); v == nil || (isStr && s == "") {
				if sa := a.sub(k); sa != nil {
					delete(out, sa.Name)
				}
			}
		}
	}
	return out
}

// appendUnique adds values to a multi-valued attribute. Elements with a
// "value" sub-attribute are identified by it: adding an existing member
// or email again updates it instead of duplicating it.
func appendUnique(a *attr, list, add []any) []any {
	for _, nv := range add {
		i := slices.IndexFunc(list, func(old any) bool { return sameElement(a, old, nv) })
		switch {
		case i < 0:
			list = append(list, nv)
		case a.hasValueSub():
			old, _ := list[i].(map[string]any)
			nm, _ := nv.(map[string]any)
			list[i] = mergeComplex(a, old, nm, nil)
		}
	}
	return list
}

// removeValues removes the given values from a multi-valued attribute.
func removeValues(container map[string]any, a *attr, value any) error {
	rm, err := normalizeValue(a, value, a.Name)
	if err != nil {
		return err
	}
	if rm == nil {
		return nil
	}
	list := slices.DeleteFunc(asList(container[a.Name]), func(old any) bool {
		return slices.ContainsFunc(rm.([]any), func(r any) bool { return sameElement(a, old, r) })
	})
	putList(container, a.Name, list)
	return nil
}

// sameElement reports whether two elements of a are the same value: by
// their "value" sub-attribute when a has one (case-insensitively unless
// it is caseExact), otherwise by equality.
func sameElement(a *attr, x, y any) bool {
	if a.hasValueSub() {
		xm, _ := x.(map[string]any)
		ym, _ := y.(map[string]any)
		xs, _ := xm["value"].(string)
		ys, _ := ym["value"].(string)
		if xs == "" || ys == "" {
			return reflect.DeepEqual(x, y)
		}
		if a.sub("value").CaseExact {
			return xs == ys
		}
		return strings.EqualFold(xs, ys)
	}
	return reflect.DeepEqual(x, y)
}

func asList(v any) []any {
	list, _ := v.([]any)
	return list
}

func putList(container map[string]any, name string, list []any) {
	if len(list) == 0 {
		delete(container, name)
		return
	}
	container[name] = list
}

// dropEmpty removes the elements left empty (or nil) by an operation.
func dropEmpty(list []any) []any {
	return slices.DeleteFunc(list, func(v any) bool {
		m, _ := v.(map[string]any)
		return len(m) == 0
	})
}

func putOrDelete(container map[string]any, name string, m map[string]any) {
	if len(m) == 0 {
		delete(container, name)
		return
	}
	container[name] = m
}

func deleteIndices(list []any, idx []int) []any {
	out := list[:0:0]
	for i, v := range list {
		if !slices.Contains(idx, i) {
			out = append(out, v)
		}
	}
	return out
}

// deepCopy copies a decoded JSON value, so that a failed PATCH leaves the
// record it read untouched.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}
