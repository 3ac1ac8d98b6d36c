package directory

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"

	"vigie/platform/store"
)

// What a write did, for the effects that follow it.
type change struct {
	op      string // "create", "replace", "patch" or "delete"
	before  *record
	after   *record
	touched map[string]bool // attributes the request targeted (PATCH)
}

func (q *request) get(rt *resourceType, id string) error {
	proj, err := q.projection(rt)
	if err != nil {
		return err
	}
	rec, err := q.backend(rt).get(q.ctx(), id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound(rt.Name, id)
	}
	if err != nil {
		return err
	}
	if inm := q.r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, rec.version) {
		q.w.Header().Set("ETag", etag(rec.version))
		q.w.WriteHeader(http.StatusNotModified)
		return nil
	}
	q.writeResource(rt, rec, proj, http.StatusOK)
	return nil
}

func (q *request) projection(rt *resourceType) (*projection, error) {
	v := q.r.URL.Query()
	return parseProjection(rt, v.Get("attributes"), v.Get("excludedAttributes"))
}

// writeResource answers with one resource, its ETag, and for a creation
// its Location.
func (q *request) writeResource(rt *resourceType, rec *record, proj *projection, status int) {
	q.w.Header().Set("ETag", etag(rec.version))
	if status == http.StatusCreated {
		q.w.Header().Set("Location", q.location(rt, rec.id))
	}
	writeJSON(q.w, status, proj.apply(q.render(rt, rec)))
}

// readResource reads the request's projection and its body as a resource
// of type rt, normalised.
func (q *request) readResource(rt *resourceType) (*projection, map[string]any, error) {
	proj, err := q.projection(rt)
	if err != nil {
		return nil, nil, err
	}
	body, err := q.body()
	if err != nil {
		return nil, nil, err
	}
	in, err := decodeObject(body)
	if err != nil {
		return nil, nil, err
	}
	doc, err := rt.normalize(in)
	return proj, doc, err
}

func (q *request) create(rt *resourceType) error {
	proj, doc, err := q.readResource(rt)
	if err != nil {
		return err
	}
	if rt == userType {
		if _, ok := doc["active"]; !ok {
			// An IdP provisions users it wants to sign in; Okta and Entra ID
			// send active explicitly, others may not.
			doc["active"] = true
		}
	}
	if err := checkRequired(rt, doc); err != nil {
		return err
	}
	now := q.s.now()
	rec := &record{id: newID(), doc: doc, created: now, updated: now}
	if rt == groupType {
		if err := q.checkMembers(nil, doc); err != nil {
			return err
		}
	}
	if err := q.backend(rt).create(q.ctx(), rec); err != nil {
		if rt == groupType && errors.Is(err, store.ErrNotFound) {
			return badRequest(scimInvalidValue, "a member is not a user of this tenant")
		}
		return err
	}
	if err := q.effects(rt, change{op: "create", after: rec}); err != nil {
		return err
	}
	q.writeResource(rt, rec, proj, http.StatusCreated)
	return nil
}

// maxIndexedBytes bounds the attributes the store indexes (userName,
// displayName, externalId): PostgreSQL refuses index entries over about
// 2.7 kB, and real values are far shorter.
const maxIndexedBytes = 1024

// checkRequired enforces what the store needs: a user's userName, a
// group's displayName, and indexed values of a bounded length.
func checkRequired(rt *resourceType, doc map[string]any) error {
	name := "userName"
	if rt == groupType {
		name = "displayName"
	}
	if stringAttr(doc, name) == "" {
		return badRequest(scimInvalidValue, "%s is required and must be a non-empty string", name)
	}
	for _, a := range rt.Indexed {
		if len(stringAttr(doc, a)) > maxIndexedBytes {
			return badRequest(scimInvalidValue, "%s is longer than %d bytes", a, maxIndexedBytes)
		}
	}
	return nil
}

// checkMembers verifies that the members a write adds are users of the
// tenant, so that the error names the wrong one. Members already in the
// group (before) were checked when they were added. Past
// maxMemberChecks new members the store's own check (the write fails with
// ErrNotFound) is left to answer, so that a large group costs one write,
// not a read per member.
func (q *request) checkMembers(before, after map[string]any) error {
	ids, err := memberIDs(after)
	if err != nil {
		return err
	}
	old := map[string]bool{}
	if before != nil {
		prev, err := memberIDs(before)
		if err != nil {
			return err
		}
		for _, id := range prev {
			old[id] = true
		}
	}
	var added []string
	for _, id := range ids {
		if !old[id] {
			added = append(added, id)
		}
	}
	if len(added) > maxMemberChecks {
		return nil
	}
	for _, id := range added {
		_, err := q.s.st.User(q.ctx(), q.tenant, id)
		if errors.Is(err, store.ErrNotFound) {
			return badRequest(scimInvalidValue, "member %q is not a user of this tenant", id)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// replace is PUT: the body replaces the resource. An absent "active"
// keeps the user's current state, so that a client that does not manage
// it can neither disable nor re-enable anyone by omission.
func (q *request) replace(rt *resourceType, id string) error {
	proj, doc, err := q.readResource(rt)
	if err != nil {
		return err
	}
	if err := checkRequired(rt, doc); err != nil {
		return err
	}
	_, setsActive := doc["active"]
	return q.readModifyWrite(rt, id, proj, func(before *record) (map[string]any, map[string]bool, error) {
		next := deepCopy(doc).(map[string]any)
		touched := map[string]bool{}
		if rt == userType {
			if !setsActive {
				next["active"] = before.doc["active"]
			}
			touched["active"] = setsActive
		}
		return next, touched, nil
	}, "replace")
}

func (q *request) patch(rt *resourceType, id string) error {
	proj, err := q.projection(rt)
	if err != nil {
		return err
	}
	body, err := q.body()
	if err != nil {
		return err
	}
	ops, err := parsePatch(body)
	if err != nil {
		return err
	}
	return q.readModifyWrite(rt, id, proj, func(before *record) (map[string]any, map[string]bool, error) {
		doc, touched, err := applyPatch(rt, id, before.doc, ops)
		if err != nil {
			return nil, nil, err
		}
		// Re-normalise: the operations checked each value, this checks the
		// whole (and drops what they emptied).
		if doc, err = rt.normalize(doc); err != nil {
			return nil, nil, err
		}
		if err := checkRequired(rt, doc); err != nil {
			return nil, nil, err
		}
		if rt == userType {
			if _, ok := doc["active"]; !ok {
				doc["active"] = before.doc["active"] // removing active changes nothing
			}
		}
		return doc, touched, nil
	}, "patch")
}

// readModifyWrite reads a resource, computes its next document with
// modify, and writes it with the version it read. Without If-Match a
// concurrent change is retried (Entra ID sends parallel PATCHes to one
// group); with If-Match it fails with 412. A write that changes nothing is
// not stored, so that it does not bump the version, but its effects (for
// example revoking a user that is told again to be inactive) still run.
func (q *request) readModifyWrite(rt *resourceType, id string, proj *projection,
	modify func(before *record) (map[string]any, map[string]bool, error), op string) error {
	ifMatch := q.r.Header.Get("If-Match")
	b := q.backend(rt)
	for attempt := 0; ; attempt++ {
		before, err := b.get(q.ctx(), id)
		if errors.Is(err, store.ErrNotFound) {
			return notFound(rt.Name, id)
		}
		if err != nil {
			return err
		}
		if ifMatch != "" && !etagMatches(ifMatch, before.version) {
			return preconditionFailed(before.version)
		}
		doc, touched, err := modify(before)
		if err != nil {
			return err
		}
		after := &record{id: id, doc: doc, created: before.created, updated: q.s.now(), version: before.version}
		changed := storedForm(rt, before.doc) != storedForm(rt, doc)
		if changed {
			if rt == groupType {
				if err := q.checkMembers(before.doc, doc); err != nil {
					return err
				}
			}
			err = b.update(q.ctx(), after)
			switch {
			case errors.Is(err, store.ErrStale) && ifMatch == "" && attempt < staleRetries:
				continue
			case errors.Is(err, store.ErrStale) && ifMatch != "":
				return preconditionFailed(before.version)
			case errors.Is(err, store.ErrStale):
				return busy()
			case errors.Is(err, store.ErrNotFound) && rt == groupType:
				// The group went away since our read, or a member is not a
				// user (one that checkMembers did not look up, or that was
				// deleted meanwhile).
				if _, gerr := b.get(q.ctx(), id); gerr == nil {
					return badRequest(scimInvalidValue, "a member is not a user of this tenant")
				}
				return notFound(rt.Name, id)
			case err != nil:
				return err
			}
		} else {
			after.updated = before.updated
		}
		if err := q.effects(rt, change{op: op, before: before, after: after, touched: touched}); err != nil {
			return err
		}
		q.writeResource(rt, after, proj, http.StatusOK)
		return nil
	}
}

func preconditionFailed(current int64) error {
	return &Error{Status: http.StatusPreconditionFailed,
		Detail: "If-Match does not match the current version " + etag(current) + "; read the resource again"}
}

// busy is the answer when concurrent writers kept winning: transient, so
// 503, which IdPs retry.
func busy() error {
	return &Error{Status: http.StatusServiceUnavailable,
		Detail: "the resource is being changed by many requests at once; retry"}
}

// storedForm is a document as the store keeps it (a group's members as
// ids only), for telling whether a write changes anything.
func storedForm(rt *resourceType, doc map[string]any) string {
	if rt == groupType {
		ids, _ := memberIDs(doc)
		slices.Sort(ids) // order is not significant
		doc = maps.Clone(doc)
		doc["members"] = ids
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

// delete removes a resource. A user is first made inactive and its sessions
// revoked, so that no login can start between revocation and deletion,
// and a failure part-way leaves a state that a retry completes.
func (q *request) delete(rt *resourceType, id string) error {
	ifMatch := q.r.Header.Get("If-Match")
	b := q.backend(rt)
	for attempt := 0; ; attempt++ {
		before, err := b.get(q.ctx(), id)
		if errors.Is(err, store.ErrNotFound) {
			return notFound(rt.Name, id)
		}
		if err != nil {
			return err
		}
		if ifMatch != "" && !etagMatches(ifMatch, before.version) {
			return preconditionFailed(before.version)
		}
		if rt == userType {
			if before.doc["active"] == true {
				inactive := &record{id: id, doc: deepCopy(before.doc).(map[string]any),
					created: before.created, updated: q.s.now(), version: before.version}
				inactive.doc["active"] = false
				err := b.update(q.ctx(), inactive)
				switch {
				case errors.Is(err, store.ErrStale) && ifMatch == "" && attempt < staleRetries:
					continue
				case errors.Is(err, store.ErrStale) && ifMatch != "":
					return preconditionFailed(before.version)
				case errors.Is(err, store.ErrStale):
					return busy()
				}
				if err != nil {
					return err
				}
			}
			if _, err := q.s.st.RevokeUserSessions(q.ctx(), q.tenant, id, "scim: user deleted", q.s.now()); err != nil {
				return err
			}
		}
		if err := b.delete(q.ctx(), id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return notFound(rt.Name, id)
			}
			return err
		}
		if err := q.effects(rt, change{op: "delete", before: before}); err != nil {
			return err
		}
		q.w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
