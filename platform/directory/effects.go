package directory

import (
	"encoding/json"
	"maps"
	"slices"

	"vigie/platform/store"
)

// maxAuditIDs bounds the member ids one audit event lists.
const maxAuditIDs = 100

// effects runs what follows a successful write: revoking a user's
// sessions when the user is made inactive, and the audit event.
//
// Revocation runs when the user ends inactive and either was active or the
// request itself said active=false. The second case makes a retry
// complete the job: if revocation failed after the user was stored
// inactive, the IdP's retry finds nothing to change but revokes again.
// A revocation failure fails the request (500) so that the IdP retries.
//
// An audit failure is logged and does not fail the request: the change is
// made, and an error would make the IdP repeat a create that now conflicts.
func (q *request) effects(rt *resourceType, c change) error {
	ev := &store.AuditEvent{
		At:     q.s.now(),
		Tenant: q.tenant,
		Actor:  "scim:" + TokenName(q.ctx()),
	}
	detail := map[string]any{"op": c.op}
	target := c.after
	if target == nil {
		target = c.before
	}
	ev.Target = target.id
	changed := c.before == nil || c.after == nil || c.after.version != c.before.version

	if rt == userType {
		ev.Action = "scim.user." + c.op
		detail["userName"] = stringAttr(target.doc, "userName")
		if c.after != nil {
			active := c.after.doc["active"] == true
			detail["active"] = active
			wasActive := c.before != nil && c.before.doc["active"] == true
			if c.before != nil && !active && (wasActive || c.touched["active"]) {
				n, err := q.s.st.RevokeUserSessions(q.ctx(), q.tenant, target.id, "scim: user deactivated", q.s.now())
				if err != nil {
					return err
				}
				detail["revokedSessions"] = n
				if wasActive {
					ev.Action = "scim.user.deactivate"
				} else if !changed {
					ev.Action = "scim.user.revoke"
				}
				changed = true
			}
		}
	} else {
		ev.Action = "scim.group." + c.op
		detail["displayName"] = stringAttr(target.doc, "displayName")
		var before, after []string
		if c.before != nil {
			before, _ = memberIDs(c.before.doc)
		}
		if c.after != nil {
			after, _ = memberIDs(c.after.doc)
		}
		if added := diff(after, before); len(added) > 0 {
			detail["membersAdded"] = capped(added)
		}
		if removed := diff(before, after); len(removed) > 0 && c.after != nil {
			detail["membersRemoved"] = capped(removed)
		}
	}
	if !changed {
		return nil
	}
	var attrs []string
	for _, k := range slices.Sorted(maps.Keys(c.touched)) {
		if c.touched[k] {
			attrs = append(attrs, k)
		}
	}
	if len(attrs) > 0 {
		detail["attributes"] = attrs
	}
	ev.Detail, _ = json.Marshal(detail)
	if err := q.s.st.Audit(q.ctx(), ev); err != nil {
		q.s.log.ErrorContext(q.ctx(), "scim: audit event not written",
			"tenant", q.tenant, "action", ev.Action, "target", ev.Target, "err", err)
	}
	return nil
}

// diff returns the elements of a not in b.
func diff(a, b []string) []string {
	in := make(map[string]bool, len(b))
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}

func capped(ids []string) any {
	if len(ids) <= maxAuditIDs {
		return ids
	}
	return map[string]any{"count": len(ids), "first": ids[:maxAuditIDs]}
}
