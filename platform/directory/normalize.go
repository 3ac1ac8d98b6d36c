package directory

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"
)

// decodeObject parses a request body that must be one JSON object. Numbers
// stay json.Number so that nothing is rounded on the way to the store.
func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, badRequest(scimInvalidSyntax, "the body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest(scimInvalidSyntax, "the body has data after its JSON object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest(scimInvalidSyntax, "the body must be a JSON object")
	}
	return m, nil
}

// normalize turns a resource as a client wrote it into our stored form:
// attribute names in their schema's spelling (SCIM names are
// case-insensitive), values checked and coerced to their declared types,
// extension attributes under their schema URN, and everything else dropped.
//
// Dropping is deliberate. Unknown attributes are ignored, as Entra ID
// expects of a server that does not map all of its attributes; read-only
// ones (id, meta, groups) are ignored as RFC 7643 §2.2 requires; password
// is not in our schema, so a password an IdP sends is never stored. A null
// or empty value clears the attribute (Entra's "null update").
func (rt *resourceType) normalize(in map[string]any) (map[string]any, error) {
	out := map[string]any{}
	for k, v := range in {
		if ext := rt.extension(k); ext != nil {
			if v == nil {
				continue
			}
			obj, ok := v.(map[string]any)
			if !ok {
				return nil, badRequest(scimInvalidValue, "%s must be an object", ext.ID)
			}
			for sk, sv := range obj {
				if err := setNormalized(out, ext, ext.Attrs, sk, sv); err != nil {
					return nil, err
				}
			}
			continue
		}
		urn, name := rt.splitURN(k)
		if ext := rt.extension(urn); ext != nil {
			if err := setNormalized(out, ext, ext.Attrs, name, v); err != nil {
				return nil, err
			}
			continue
		}
		if err := setNormalized(out, nil, rt.Core.Attrs, name, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// setNormalized stores the normalised value of attribute name (of ext, or
// of the core schema when ext is nil) into doc. Unknown names are ignored.
func setNormalized(doc map[string]any, ext *schema, attrs []*attr, name string, v any) error {
	a := findAttr(attrs, name)
	if a == nil {
		return nil
	}
	container := doc
	if ext != nil {
		c, _ := doc[ext.ID].(map[string]any)
		if c == nil {
			c = map[string]any{}
			doc[ext.ID] = c
		}
		container = c
		defer func() {
			if len(c) == 0 {
				delete(doc, ext.ID)
			}
		}()
	}
	if _, dup := container[a.Name]; dup {
		return badRequest(scimInvalidSyntax, "attribute %s appears twice (names are case-insensitive)", a.Name)
	}
	nv, err := normalizeValue(a, v, a.Name)
	if err != nil {
		return err
	}
	if nv != nil {
		container[a.Name] = nv
	}
	return nil
}

// normalizeValue checks v against a and returns it in stored form, or nil
// when it is unassigned (null, empty string, empty object or list).
func normalizeValue(a *attr, v any, where string) (any, error) {
	if v == nil {
		return nil, nil
	}
	if !a.Multi {
		return normalizeSingle(a, v, where)
	}
	elems, ok := v.([]any)
	if !ok {
		// One value where a list is expected: some clients send it so.
		elems = []any{v}
	}
	var out []any
	for _, e := range elems {
		ne, err := normalizeSingle(a, e, where)
		if err != nil {
			return nil, err
		}
		if ne != nil {
			out = append(out, ne)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func normalizeSingle(a *attr, v any, where string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch a.Type {
	case typeString, typeReference:
		s, ok := v.(string)
		if !ok {
			return nil, badRequest(scimInvalidValue, "%s must be a string", where)
		}
		if s == "" {
			return nil, nil
		}
		if strings.ContainsRune(s, 0) {
			// PostgreSQL cannot store NUL in text; refuse it on both stores.
			return nil, badRequest(scimInvalidValue, "%s contains a NUL character", where)
		}
		return s, nil
	case typeBoolean:
		return parseBool(v, where)
	case typeInteger:
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			return nil, badRequest(scimInvalidValue, "%s must be an integer", where)
		}
		return n, nil
	case typeDecimal:
		n, ok := v.(json.Number)
		if _, err := n.Float64(); !ok || err != nil {
			return nil, badRequest(scimInvalidValue, "%s must be a number", where)
		}
		return n, nil
	case typeDateTime:
		s, ok := v.(string)
		if !ok {
			return nil, badRequest(scimInvalidValue, "%s must be a date-time string", where)
		}
		if s == "" {
			return nil, nil
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, badRequest(scimInvalidValue, "%s must be an RFC 3339 date-time", where)
		}
		return s, nil
	case typeComplex:
		switch c := v.(type) {
		case string:
			// Entra ID sends the manager as its id alone, not {"value": id}.
			if a.hasValueSub() {
				if c == "" {
					return nil, nil
				}
				return map[string]any{"value": c}, nil
			}
		case map[string]any:
			out := map[string]any{}
			for k, sv := range c {
				sa := a.sub(k)
				if sa == nil {
					continue
				}
				if _, dup := out[sa.Name]; dup {
					return nil, badRequest(scimInvalidSyntax, "%s.%s appears twice", where, sa.Name)
				}
				nv, err := normalizeValue(sa, sv, where+"."+sa.Name)
				if err != nil {
					return nil, err
				}
				if nv != nil {
					out[sa.Name] = nv
				}
			}
			if len(out) == 0 {
				return nil, nil
			}
			return out, nil
		}
		return nil, badRequest(scimInvalidValue, "%s must be an object", where)
	}
	return nil, badRequest(scimInvalidValue, "%s has an unsupported type", where)
}

// parseBool accepts JSON booleans and, because Entra ID's older
// provisioning jobs send them so, the strings "True" and "False" in any
// case.
func parseBool(v any, where string) (any, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		switch {
		case strings.EqualFold(b, "true"):
			return true, nil
		case strings.EqualFold(b, "false"):
			return false, nil
		}
	}
	return nil, badRequest(scimInvalidValue, "%s must be a boolean", where)
}
