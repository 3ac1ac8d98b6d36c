package directory

import (
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/scim2/filter-parser/v2"

	"vigie/platform/store"
)

// scanPage is how many resources one store read brings when a filter is
// evaluated in Go.
const scanPage = 500

// list answers GET /Users and GET /Groups (RFC 7644 §3.4.2): filter,
// startIndex/count pagination, attributes/excludedAttributes. A filter
// that matches nothing is 200 with totalResults 0, never 404. Sorting is
// not supported (ServiceProviderConfig says so); results come in creation
// order.
func (q *request) list(rt *resourceType) error {
	v := q.r.URL.Query()
	start, err := intParam(v, "startIndex", 1)
	if err != nil {
		return err
	}
	start = max(start, 1) // RFC 7644 §3.4.2.4: less than 1 is 1
	count, err := intParam(v, "count", q.s.opts.MaxResults)
	if err != nil {
		return err
	}
	count = min(max(count, 0), q.s.opts.MaxResults) // negative is 0; above the maximum is the maximum
	proj, err := q.projection(rt)
	if err != nil {
		return err
	}
	var expr filter.Expression
	if f := strings.TrimSpace(v.Get("filter")); f != "" {
		if expr, err = parseFilter(rt, f); err != nil {
			return err
		}
	}
	recs, total, err := q.find(rt, expr, start, count)
	if err != nil {
		return err
	}
	resources := make([]any, 0, len(recs))
	for _, r := range recs {
		resources = append(resources, proj.apply(q.render(rt, r)))
	}
	writeJSON(q.w, http.StatusOK, map[string]any{
		"schemas":      []string{schemaList},
		"totalResults": total,
		"startIndex":   start,
		"itemsPerPage": len(resources),
		"Resources":    resources,
	})
	return nil
}

// intParam reads an integer query parameter. A number too large for an
// int32 is clamped rather than refused: it is still a number, and clamping
// it gives the same answer (an empty or a full page).
func intParam(v url.Values, name string, def int) (int, error) {
	s := strings.TrimSpace(v.Get(name))
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			if strings.HasPrefix(s, "-") {
				return math.MinInt32, nil
			}
			return math.MaxInt32, nil
		}
		return 0, badRequest(scimInvalidValue, "%s must be an integer, not %q", name, s)
	}
	return int(n), nil
}

// find returns one page of the resources expr selects, and their total.
//
// Cost: no filter, `id eq` (alone or and-ed), and a filter that is one
// equality on userName, externalId or displayName (users) or displayName
// or externalId (groups) are answered by the store, one indexed query. A
// conjunction containing such an equality reads the few resources it
// selects and evaluates the rest in Go. Any other filter (sw, co, gt,
// or, not, meta.lastModified…) reads the whole tenant directory in pages
// of scanPage and evaluates in Go: O(directory size) per request, refused
// with 400 tooMany beyond Options.MaxScan resources.
func (q *request) find(rt *resourceType, expr filter.Expression, start, count int) ([]*record, int, error) {
	b := q.backend(rt)
	if expr == nil {
		return b.list(q.ctx(), store.ListQuery{Start: start, Count: count})
	}
	sc := scope{rt: rt}
	var (
		hits  []*record
		total int
	)
	keep := func(recs []*record) {
		for _, r := range recs {
			if !matches(sc, expr, q.render(rt, r)) {
				continue
			}
			total++
			if total >= start && len(hits) < count {
				hits = append(hits, r)
			}
		}
	}
	// id eq, alone or in a conjunction such as Entra ID's membership check
	// `id eq "g" and members[value eq "u"]`: one read.
	for _, c := range conjuncts(expr) {
		if id, ok := idEq(c); ok {
			rec, err := b.get(q.ctx(), id)
			if errors.Is(err, store.ErrNotFound) {
				return nil, 0, nil
			}
			if err != nil {
				return nil, 0, err
			}
			keep([]*record{rec})
			return hits, total, nil
		}
	}
	attrName, value, whole, ok := pushdown(rt, expr)
	if ok && whole {
		return b.list(q.ctx(), store.ListQuery{Attr: attrName, Value: value, Start: start, Count: count})
	}
	if ok {
		recs, _, err := b.list(q.ctx(), store.ListQuery{Attr: attrName, Value: value, Count: -1})
		if err != nil {
			return nil, 0, err
		}
		keep(recs)
		return hits, total, nil
	}
	_, size, err := b.list(q.ctx(), store.ListQuery{Count: 0})
	if err != nil {
		return nil, 0, err
	}
	if size > q.s.opts.MaxScan {
		return nil, 0, badRequest(scimTooMany,
			"this filter is evaluated over every %s and there are %d (limit %d); filter with eq on %s",
			strings.ToLower(rt.Name), size, q.s.opts.MaxScan, strings.Join(rt.Indexed, ", "))
	}
	for pos := 1; ; pos += scanPage {
		recs, _, err := b.list(q.ctx(), store.ListQuery{Start: pos, Count: scanPage})
		if err != nil {
			return nil, 0, err
		}
		keep(recs)
		if len(recs) < scanPage {
			return hits, total, nil
		}
	}
}
