package directory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"vigie/platform/store"
)

// record is a user or a group between the store and the wire: the
// normalised attribute document plus what the store keeps beside it.
type record struct {
	id      string
	doc     map[string]any // normalised attributes; no id, meta or schemas
	created time.Time
	updated time.Time
	version int64
}

// backend is the part of the store one resource type uses. It keeps the
// handlers generic over users and groups; it is not a seam for tests,
// which run against the real store.
type backend interface {
	get(ctx context.Context, id string) (*record, error)
	list(ctx context.Context, q store.ListQuery) ([]*record, int, error)
	create(ctx context.Context, r *record) error
	update(ctx context.Context, r *record) error
	delete(ctx context.Context, id string) error
}

func (q *request) backend(rt *resourceType) backend {
	if rt == userType {
		return userBackend{q.s.st, q.tenant}
	}
	return groupBackend{q.s.st, q.tenant}
}

// decodeDoc reads a stored attribute document.
func decodeDoc(raw json.RawMessage) (map[string]any, error) {
	doc := map[string]any{}
	if len(raw) == 0 {
		return doc, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("directory: stored attributes: %w", err)
	}
	if doc == nil {
		doc = map[string]any{}
	}
	return doc, nil
}

func stringAttr(doc map[string]any, name string) string {
	s, _ := doc[name].(string)
	return s
}

// setOrDelete sets doc[name] to s, or removes it when s is empty.
func setOrDelete(doc map[string]any, name, s string) {
	if s == "" {
		delete(doc, name)
		return
	}
	doc[name] = s
}

type userBackend struct {
	st     store.Store
	tenant string
}

func userRecord(u *store.User) (*record, error) {
	doc, err := decodeDoc(u.Attributes)
	if err != nil {
		return nil, err
	}
	// The columns are the truth; the document may predate a column update.
	doc["userName"] = u.UserName
	setOrDelete(doc, "externalId", u.ExternalID)
	setOrDelete(doc, "displayName", u.DisplayName)
	doc["active"] = u.Active
	return &record{id: u.ID, doc: doc, created: u.CreatedAt, updated: u.UpdatedAt, version: u.Version}, nil
}

func (b userBackend) toStore(r *record) (*store.User, error) {
	attrs, err := json.Marshal(r.doc)
	if err != nil {
		return nil, fmt.Errorf("directory: encode user: %w", err)
	}
	active, _ := r.doc["active"].(bool)
	return &store.User{
		Tenant:      b.tenant,
		ID:          r.id,
		UserName:    stringAttr(r.doc, "userName"),
		ExternalID:  stringAttr(r.doc, "externalId"),
		DisplayName: stringAttr(r.doc, "displayName"),
		Active:      active,
		Attributes:  attrs,
		CreatedAt:   r.created,
		UpdatedAt:   r.updated,
		Version:     r.version,
	}, nil
}

func (b userBackend) get(ctx context.Context, id string) (*record, error) {
	u, err := b.st.User(ctx, b.tenant, id)
	if err != nil {
		return nil, err
	}
	return userRecord(u)
}

func (b userBackend) list(ctx context.Context, q store.ListQuery) ([]*record, int, error) {
	users, total, err := b.st.ListUsers(ctx, b.tenant, q)
	if err != nil {
		return nil, 0, err
	}
	recs := make([]*record, 0, len(users))
	for _, u := range users {
		r, err := userRecord(u)
		if err != nil {
			return nil, 0, err
		}
		recs = append(recs, r)
	}
	return recs, total, nil
}

func (b userBackend) create(ctx context.Context, r *record) error {
	u, err := b.toStore(r)
	if err != nil {
		return err
	}
	if err := b.st.CreateUser(ctx, u); err != nil {
		return err
	}
	r.version, r.created, r.updated = u.Version, u.CreatedAt, u.UpdatedAt
	return nil
}

func (b userBackend) update(ctx context.Context, r *record) error {
	u, err := b.toStore(r)
	if err != nil {
		return err
	}
	if err := b.st.UpdateUser(ctx, u); err != nil {
		return err
	}
	r.version, r.updated = u.Version, u.UpdatedAt
	return nil
}

func (b userBackend) delete(ctx context.Context, id string) error {
	return b.st.DeleteUser(ctx, b.tenant, id)
}

type groupBackend struct {
	st     store.Store
	tenant string
}

func groupRecord(g *store.Group) (*record, error) {
	doc, err := decodeDoc(g.Attributes)
	if err != nil {
		return nil, err
	}
	doc["displayName"] = g.DisplayName
	setOrDelete(doc, "externalId", g.ExternalID)
	delete(doc, "members")
	if len(g.Members) > 0 {
		members := make([]any, len(g.Members))
		for i, id := range g.Members {
			members[i] = map[string]any{"value": id}
		}
		doc["members"] = members
	}
	return &record{id: g.ID, doc: doc, created: g.CreatedAt, updated: g.UpdatedAt, version: g.Version}, nil
}

// memberIDs returns the user IDs of a group document's members, in order,
// without duplicates. A member must have a value and, if typed, be a User:
// nested groups are not supported (the token service expands no groups).
func memberIDs(doc map[string]any) ([]string, error) {
	list, _ := doc["members"].([]any)
	ids := make([]string, 0, len(list))
	for _, m := range list {
		m, _ := m.(map[string]any)
		id, _ := m["value"].(string)
		if id == "" {
			return nil, badRequest(scimInvalidValue, "every member needs a value: the id of a User")
		}
		if t, ok := m["type"].(string); ok && t != "" && !strings.EqualFold(t, "User") {
			return nil, badRequest(scimInvalidValue, "member %q is of type %q; only Users can be members", id, t)
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (b groupBackend) toStore(r *record) (*store.Group, error) {
	members, err := memberIDs(r.doc)
	if err != nil {
		return nil, err
	}
	rest := maps.Clone(r.doc)
	delete(rest, "members") // the Members column holds them
	attrs, err := json.Marshal(rest)
	if err != nil {
		return nil, fmt.Errorf("directory: encode group: %w", err)
	}
	return &store.Group{
		Tenant:      b.tenant,
		ID:          r.id,
		DisplayName: stringAttr(r.doc, "displayName"),
		ExternalID:  stringAttr(r.doc, "externalId"),
		Members:     members,
		Attributes:  attrs,
		CreatedAt:   r.created,
		UpdatedAt:   r.updated,
		Version:     r.version,
	}, nil
}

func (b groupBackend) get(ctx context.Context, id string) (*record, error) {
	g, err := b.st.Group(ctx, b.tenant, id)
	if err != nil {
		return nil, err
	}
	return groupRecord(g)
}

func (b groupBackend) list(ctx context.Context, q store.ListQuery) ([]*record, int, error) {
	groups, total, err := b.st.ListGroups(ctx, b.tenant, q)
	if err != nil {
		return nil, 0, err
	}
	recs := make([]*record, 0, len(groups))
	for _, g := range groups {
		r, err := groupRecord(g)
		if err != nil {
			return nil, 0, err
		}
		recs = append(recs, r)
	}
	return recs, total, nil
}

func (b groupBackend) create(ctx context.Context, r *record) error {
	g, err := b.toStore(r)
	if err != nil {
		return err
	}
	if err := b.st.CreateGroup(ctx, g); err != nil {
		return err
	}
	r.version, r.created, r.updated = g.Version, g.CreatedAt, g.UpdatedAt
	return nil
}

func (b groupBackend) update(ctx context.Context, r *record) error {
	g, err := b.toStore(r)
	if err != nil {
		return err
	}
	if err := b.st.UpdateGroup(ctx, g); err != nil {
		return err
	}
	r.version, r.updated = g.Version, g.UpdatedAt
	return nil
}

func (b groupBackend) delete(ctx context.Context, id string) error {
	return b.st.DeleteGroup(ctx, b.tenant, id)
}
