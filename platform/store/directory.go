package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A filterAttr is a ListQuery attribute and the column it compares.
type filterAttr struct {
	column string
	fold   bool // compare the case-folded value
}

// SCIM attribute names are case-insensitive, hence lower-case keys.
var (
	userFilters = map[string]filterAttr{
		"username":    {"user_name_key", true},
		"displayname": {"display_name_key", true},
		"externalid":  {"external_id", false},
	}
	groupFilters = map[string]filterAttr{
		"displayname": {"display_name_key", true},
		"externalid":  {"external_id", false},
	}
)

// listWhere returns the WHERE clause and its arguments for q.
func listWhere(tenant string, q ListQuery, filters map[string]filterAttr) (string, []any, error) {
	where, args := `tenant = ?`, []any{tenant}
	if q.Attr == "" {
		return where, args, nil
	}
	f, ok := filters[strings.ToLower(q.Attr)]
	if !ok {
		return "", nil, fmt.Errorf("store: list: cannot filter on %q", q.Attr)
	}
	v := q.Value
	if f.fold {
		v = fold(v)
	}
	return where + ` AND ` + f.column + ` = ?`, append(args, v), nil
}

// page returns the LIMIT and OFFSET arguments of q.
func page(q ListQuery) (lim, off int64) {
	return limit(q.Count), int64(max(q.Start, 1) - 1)
}

// Users.

const userColumns = `tenant, id, user_name, external_id, display_name, active, attributes, created_at, updated_at, version`

func scanUser(row interface{ Scan(...any) error }) (*User, error) {
	u := new(User)
	err := row.Scan(&u.Tenant, &u.ID, &u.UserName, &u.ExternalID, &u.DisplayName, &u.Active, (*[]byte)(&u.Attributes), ts(&u.CreatedAt), ts(&u.UpdatedAt), &u.Version)
	return u, err
}

func userWhat(u *User) string {
	return in(u.Tenant, "user", u.ID) + " (userName " + strconv.Quote(u.UserName) + ")"
}

// CreateUser stores u. CreatedAt and UpdatedAt default to now.
func (s *sqlStore) CreateUser(ctx context.Context, u *User) error {
	created := orNow(u.CreatedAt, time.Now())
	updated := orNow(u.UpdatedAt, created)
	_, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO directory_users (tenant, id, user_name, user_name_key, external_id, display_name, display_name_key, active, attributes, created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`),
		u.Tenant, u.ID, u.UserName, fold(u.UserName), u.ExternalID, u.DisplayName, fold(u.DisplayName), u.Active, bytesOrNil(u.Attributes), s.d.t(created), s.d.t(updated))
	if err != nil {
		return s.fail(err, userWhat(u))
	}
	u.CreatedAt, u.UpdatedAt, u.Version = created, updated, 1
	return nil
}

func (s *sqlStore) User(ctx context.Context, tenant, id string) (*User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+userColumns+` FROM directory_users WHERE tenant = ? AND id = ?`), tenant, id))
	if err != nil {
		return nil, s.fail(err, in(tenant, "user", id))
	}
	return u, nil
}

func (s *sqlStore) UserByName(ctx context.Context, tenant, userName string) (*User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+userColumns+` FROM directory_users WHERE tenant = ? AND user_name_key = ?`), tenant, fold(userName)))
	if err != nil {
		return nil, s.fail(err, in(tenant, "userName", userName))
	}
	return u, nil
}

func (s *sqlStore) ListUsers(ctx context.Context, tenant string, q ListQuery) ([]*User, int, error) {
	where, args, err := listWhere(tenant, q, userFilters)
	if err != nil {
		return nil, 0, err
	}
	var (
		users []*User
		total int
	)
	err = s.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, s.d.q(`SELECT COUNT(*) FROM directory_users WHERE `+where), args...).Scan(&total); err != nil {
			return err
		}
		if q.Count == 0 {
			return nil
		}
		lim, off := page(q)
		rows, err := tx.QueryContext(ctx, s.d.q(`SELECT `+userColumns+` FROM directory_users WHERE `+where+` ORDER BY created_at, id LIMIT ? OFFSET ?`), append(args, lim, off)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				return err
			}
			users = append(users, u)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, s.fail(err, "tenant "+strconv.Quote(tenant)+": list users")
	}
	return users, total, nil
}

// UpdateUser replaces everything but the ID and CreatedAt; UpdatedAt is
// the caller's (now when zero).
func (s *sqlStore) UpdateUser(ctx context.Context, u *User) error {
	now := orNow(u.UpdatedAt, time.Now())
	res, err := s.w.ExecContext(ctx, s.d.q(`UPDATE directory_users SET user_name = ?, user_name_key = ?, external_id = ?, display_name = ?, display_name_key = ?, active = ?, attributes = ?, updated_at = ?, version = version + 1 WHERE tenant = ? AND id = ? AND version = ?`),
		u.UserName, fold(u.UserName), u.ExternalID, u.DisplayName, fold(u.DisplayName), u.Active, bytesOrNil(u.Attributes), s.d.t(now), u.Tenant, u.ID, u.Version)
	if err != nil {
		return s.fail(err, userWhat(u))
	}
	if affected(res) == 0 {
		return s.whyNotUpdated(ctx, s.w, `SELECT version FROM directory_users WHERE tenant = ? AND id = ?`, in(u.Tenant, "user", u.ID), u.Version, u.Tenant, u.ID)
	}
	u.UpdatedAt = now
	u.Version++
	return nil
}

// DeleteUser deletes the user and its memberships. The groups it leaves
// get a new version, since their member lists changed.
func (s *sqlStore) DeleteUser(ctx context.Context, tenant, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.q(`UPDATE directory_groups SET version = version + 1, updated_at = ? WHERE tenant = ? AND id IN (SELECT group_id FROM directory_members WHERE tenant = ? AND user_id = ?)`),
			s.d.t(time.Now()), tenant, tenant, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM directory_users WHERE tenant = ? AND id = ?`), tenant, id)
		if err != nil {
			return err
		}
		if affected(res) == 0 {
			return sql.ErrNoRows
		}
		return nil
	})
	return s.fail(err, in(tenant, "user", id))
}

// Groups.

const groupColumns = `g.tenant, g.id, g.display_name, g.external_id, g.attributes, g.created_at, g.updated_at, g.version`

func scanGroup(row interface{ Scan(...any) error }) (*Group, error) {
	g := new(Group)
	err := row.Scan(&g.Tenant, &g.ID, &g.DisplayName, &g.ExternalID, (*[]byte)(&g.Attributes), ts(&g.CreatedAt), ts(&g.UpdatedAt), &g.Version)
	return g, err
}

func groupWhat(g *Group) string {
	return in(g.Tenant, "group", g.ID) + " (displayName " + strconv.Quote(g.DisplayName) + ")"
}

// CreateGroup stores g and its members. CreatedAt and UpdatedAt default to
// now.
func (s *sqlStore) CreateGroup(ctx context.Context, g *Group) error {
	created := orNow(g.CreatedAt, time.Now())
	updated := orNow(g.UpdatedAt, created)
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO directory_groups (tenant, id, display_name, display_name_key, external_id, attributes, created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)`),
			g.Tenant, g.ID, g.DisplayName, fold(g.DisplayName), g.ExternalID, bytesOrNil(g.Attributes), s.d.t(created), s.d.t(updated)); err != nil {
			return err
		}
		return s.addMembers(ctx, tx, g, unique(g.Members))
	})
	if err != nil {
		return s.fail(err, groupWhat(g))
	}
	g.CreatedAt, g.UpdatedAt, g.Version = created, updated, 1
	return nil
}

// chunk is how many IDs one IN (…) list holds: far below both databases'
// limits on parameters.
const chunk = 500

// addMembers adds users to g. They must exist: the insert selects them, so
// that a missing one is found by count, and named.
func (s *sqlStore) addMembers(ctx context.Context, tx *sql.Tx, g *Group, users []string) error {
	for len(users) > 0 {
		n := min(len(users), chunk)
		ids := users[:n]
		users = users[n:]
		args := make([]any, 0, 2+n)
		args = append(args, g.ID, g.Tenant)
		for _, id := range ids {
			args = append(args, id)
		}
		res, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO directory_members (tenant, group_id, user_id) SELECT tenant, CAST(? AS TEXT), id FROM directory_users WHERE tenant = ? AND id IN (`+marks(n)+`)`), args...)
		if err != nil {
			return err
		}
		if affected(res) == int64(n) {
			continue
		}
		found := map[string]bool{}
		rows, err := tx.QueryContext(ctx, s.d.q(`SELECT id FROM directory_users WHERE tenant = ? AND id IN (`+marks(n)+`)`), args[1:]...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			found[id] = true
		}
		rows.Close()
		for _, id := range ids {
			if !found[id] {
				return fmt.Errorf("store: %s: member %q: %w", groupWhat(g), id, ErrNotFound)
			}
		}
		return fmt.Errorf("store: %s: adding members changed %d rows for %d users", groupWhat(g), affected(res), n)
	}
	return nil
}

// loadMembers fills in the members of groups, all of one tenant.
func (s *sqlStore) loadMembers(ctx context.Context, q execer, tenant string, groups []*Group) error {
	byID := make(map[string]*Group, len(groups))
	for _, g := range groups {
		byID[g.ID] = g
	}
	for len(groups) > 0 {
		n := min(len(groups), chunk)
		args := make([]any, 0, 1+n)
		args = append(args, tenant)
		for _, g := range groups[:n] {
			args = append(args, g.ID)
		}
		groups = groups[n:]
		rows, err := q.QueryContext(ctx, s.d.q(`SELECT group_id, user_id FROM directory_members WHERE tenant = ? AND group_id IN (`+marks(n)+`) ORDER BY group_id, user_id`), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var gid, uid string
			if err := rows.Scan(&gid, &uid); err != nil {
				rows.Close()
				return err
			}
			g := byID[gid]
			g.Members = append(g.Members, uid)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// queryGroups runs a query for groupColumns and loads the groups' members,
// within one snapshot.
func (s *sqlStore) queryGroups(ctx context.Context, tx *sql.Tx, tenant, query string, args ...any) ([]*Group, error) {
	rows, err := tx.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return nil, err
	}
	var groups []*Group
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		groups = append(groups, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return groups, s.loadMembers(ctx, tx, tenant, groups)
}

func (s *sqlStore) Group(ctx context.Context, tenant, id string) (*Group, error) {
	var groups []*Group
	err := s.read(ctx, func(tx *sql.Tx) (err error) {
		groups, err = s.queryGroups(ctx, tx, tenant, `SELECT `+groupColumns+` FROM directory_groups g WHERE g.tenant = ? AND g.id = ?`, tenant, id)
		return err
	})
	if err == nil && len(groups) == 0 {
		err = sql.ErrNoRows
	}
	if err != nil {
		return nil, s.fail(err, in(tenant, "group", id))
	}
	return groups[0], nil
}

func (s *sqlStore) ListGroups(ctx context.Context, tenant string, q ListQuery) ([]*Group, int, error) {
	where, args, err := listWhere(tenant, q, groupFilters)
	if err != nil {
		return nil, 0, err
	}
	var (
		groups []*Group
		total  int
	)
	err = s.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, s.d.q(`SELECT COUNT(*) FROM directory_groups WHERE `+where), args...).Scan(&total); err != nil {
			return err
		}
		if q.Count == 0 {
			return nil
		}
		lim, off := page(q)
		groups, err = s.queryGroups(ctx, tx, tenant, `SELECT `+groupColumns+` FROM directory_groups g WHERE `+where+` ORDER BY created_at, id LIMIT ? OFFSET ?`, append(args, lim, off)...)
		return err
	})
	if err != nil {
		return nil, 0, s.fail(err, "tenant "+strconv.Quote(tenant)+": list groups")
	}
	return groups, total, nil
}

// UpdateGroup replaces everything but the ID and CreatedAt, members
// included; UpdatedAt is the caller's (now when zero). Only the difference
// in members is written, so that adding one member to a large group is
// cheap.
func (s *sqlStore) UpdateGroup(ctx context.Context, g *Group) error {
	now := orNow(g.UpdatedAt, time.Now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.q(`UPDATE directory_groups SET display_name = ?, display_name_key = ?, external_id = ?, attributes = ?, updated_at = ?, version = version + 1 WHERE tenant = ? AND id = ? AND version = ?`),
			g.DisplayName, fold(g.DisplayName), g.ExternalID, bytesOrNil(g.Attributes), s.d.t(now), g.Tenant, g.ID, g.Version)
		if err != nil {
			return err
		}
		if affected(res) == 0 {
			return s.whyNotUpdated(ctx, tx, `SELECT version FROM directory_groups WHERE tenant = ? AND id = ?`, in(g.Tenant, "group", g.ID), g.Version, g.Tenant, g.ID)
		}
		rows, err := tx.QueryContext(ctx, s.d.q(`SELECT user_id FROM directory_members WHERE tenant = ? AND group_id = ?`), g.Tenant, g.ID)
		if err != nil {
			return err
		}
		current := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			current[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var add []string
		for _, id := range unique(g.Members) {
			if current[id] {
				delete(current, id)
			} else {
				add = append(add, id)
			}
		}
		var remove []any
		for id := range current {
			remove = append(remove, id)
		}
		for len(remove) > 0 {
			n := min(len(remove), chunk)
			args := append([]any{g.Tenant, g.ID}, remove[:n]...)
			remove = remove[n:]
			if _, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM directory_members WHERE tenant = ? AND group_id = ? AND user_id IN (`+marks(n)+`)`), args...); err != nil {
				return err
			}
		}
		return s.addMembers(ctx, tx, g, add)
	})
	if err != nil {
		return s.fail(err, groupWhat(g))
	}
	g.UpdatedAt = now
	g.Version++
	return nil
}

func (s *sqlStore) DeleteGroup(ctx context.Context, tenant, id string) error {
	res, err := s.w.ExecContext(ctx, s.d.q(`DELETE FROM directory_groups WHERE tenant = ? AND id = ?`), tenant, id)
	if err == nil && affected(res) == 0 {
		err = sql.ErrNoRows
	}
	return s.fail(err, in(tenant, "group", id))
}

// GroupsOfUser returns the user's groups, ordered case-insensitively by
// displayName, without their members: callers want the names (token
// claims, the SCIM user's groups attribute), and one large group would
// otherwise be read in full on every login. None for an unknown user.
func (s *sqlStore) GroupsOfUser(ctx context.Context, tenant, userID string) ([]*Group, error) {
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT `+groupColumns+` FROM directory_groups g JOIN directory_members m ON m.tenant = g.tenant AND m.group_id = g.id WHERE m.tenant = ? AND m.user_id = ? ORDER BY g.display_name_key, g.id`), tenant, userID)
	if err != nil {
		return nil, s.fail(err, in(tenant, "groups of user", userID))
	}
	defer rows.Close()
	var groups []*Group
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return nil, s.fail(err, in(tenant, "groups of user", userID))
		}
		groups = append(groups, g)
	}
	return groups, s.fail(rows.Err(), in(tenant, "groups of user", userID))
}

// unique returns ids without duplicates, in their first order.
func unique(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// marks returns n comma-separated placeholders.
func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
