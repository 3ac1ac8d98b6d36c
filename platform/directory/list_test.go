package directory

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestPagination: MSPM "Paginate", MSLA #23/#24 (pages of 5 over 11 or
// more resources, startIndex == page*5+1), and ELIM's count rules.
func TestPagination(t *testing.T) {
	eachStore(t, func(t *testing.T, h *harness) {
		var all []string
		for i := range 12 {
			all = append(all, h.createUser(userBody(fmt.Sprintf("page%02d@example.com", i))))
		}
		for _, filter := range []string{"", filterQuery(`userName sw "page"`), filterQuery(`userName ew "@example.com" and active eq true`)} {
			var seen []string
			for page := 0; ; page++ {
				r := h.must(http.StatusOK, h.do("GET", fmt.Sprintf("/Users?startIndex=%d&count=5%s", page*5+1, "&"+trimQ(filter)), ""))
				if num(t, r.body["startIndex"]) != page*5+1 || num(t, r.body["totalResults"]) != 12 ||
					num(t, r.body["itemsPerPage"]) != len(ids(r)) {
					t.Fatalf("%q page %d: %s", filter, page, r.raw)
				}
				if len(ids(r)) == 0 {
					break
				}
				seen = append(seen, ids(r)...)
			}
			if !slices.Equal(seen, all) {
				t.Errorf("%q: pages gave %v, want all users in creation order %v", filter, seen, all)
			}
		}

		for _, tc := range []struct {
			query       string
			start, size int
		}{
			{"count=-1", 1, 0},                           // negative is 0: totals only
			{"count=0", 1, 0},                            //
			{"count=1000", 1, 10},                        // clamped to MaxResults
			{"", 1, 10},                                  // default page is MaxResults
			{"startIndex=0&count=2", 1, 2},               // less than 1 is 1
			{"startIndex=-7&count=2", 1, 2},              //
			{"startIndex=12&count=5", 12, 1},             // the last one
			{"startIndex=99", 99, 0},                     // past the end: 200, empty
			{"startIndex=99999999999999", 2147483647, 0}, // huge is clamped, not refused
			{"count=99999999999999", 1, 10},
		} {
			r := h.must(http.StatusOK, h.do("GET", "/Users?"+tc.query, ""))
			if num(t, r.body["startIndex"]) != tc.start || len(ids(r)) != tc.size || num(t, r.body["totalResults"]) != 12 {
				t.Errorf("%s: startIndex %v, %d resources, total %v; want %d, %d, 12", tc.query, r.body["startIndex"], len(ids(r)), r.body["totalResults"], tc.start, tc.size)
			}
			if _, ok := r.body["Resources"].([]any); !ok {
				t.Errorf("%s: Resources is not a list: %s", tc.query, r.raw)
			}
		}

		// Groups paginate the same way (MSLA #24).
		var groups []string
		for i := range 7 {
			groups = append(groups, h.createGroup(fmt.Sprintf(`{"displayName":"g%d"}`, i)))
		}
		var seen []string
		for start := 1; start <= 7; start += 3 {
			r := h.must(http.StatusOK, h.do("GET", fmt.Sprintf("/Groups?startIndex=%d&count=3", start), ""))
			if num(t, r.body["startIndex"]) != start || num(t, r.body["totalResults"]) != 7 {
				t.Fatalf("groups page at %d: %s", start, r.raw)
			}
			seen = append(seen, ids(r)...)
		}
		if !slices.Equal(seen, groups) {
			t.Errorf("group pages %v, want %v", seen, groups)
		}
	})
}

func trimQ(q string) string {
	if len(q) > 0 && q[0] == '?' {
		return q[1:]
	}
	return q
}

// TestFilters: the filters of MSPM and ELIM FilterOnCommonAttribute, both
// those the store answers and those evaluated in Go.
func TestFilters(t *testing.T) {
	eachStore(t, func(t *testing.T, h *harness) {
		olivia := h.createUser(`{"userName":"Olivia.Lopez@example.com","externalId":"ext-OL","displayName":"Olivia Lopez",
			"name":{"givenName":"Olivia","familyName":"Lopez"},"emails":[{"value":"olivia@example.org","type":"work"}]}`)
		oscar := h.createUser(`{"userName":"oscar@example.com","externalId":"ext-OS","displayName":"Oscar",
			"name":{"givenName":"Oscar","familyName":"Lopez"},"emails":[{"value":"oscar@example.net","type":"work"}]}`)
		bob := h.createUser(`{"userName":"bob@example.com","active":false,"name":{"familyName":"Smith"},
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}`)
		created := func(id string) string {
			return asString(field(h.must(http.StatusOK, h.do("GET", "/Users/"+id, "")).body, "meta.created"))
		}
		// Oscar is modified later than every creation: move the clock past 2021.
		h.clock.mu.Lock()
		h.clock.t = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
		h.clock.mu.Unlock()
		h.must(http.StatusOK, h.do("PATCH", "/Users/"+oscar, patchBody(`{"op":"replace","path":"title","value":"Chief"}`)))

		for _, tc := range []struct {
			filter string
			want   []string
		}{
			{`userName eq "OLIVIA.LOPEZ@EXAMPLE.COM"`, []string{olivia}},
			{`userName sw "O"`, []string{olivia, oscar}},
			{`userName eq "nobody@example.com"`, nil},
			{`externalId eq "ext-OS"`, []string{oscar}},
			{`externalId eq "EXT-OS"`, nil}, // externalId is caseExact
			{`displayName eq "oscar"`, []string{oscar}},
			{`id eq "` + bob + `"`, []string{bob}},
			{`id eq "unknown"`, nil},
			{`meta.resourceType eq "User"`, []string{olivia, oscar, bob}},
			{`meta.created gt "` + created(olivia) + `"`, []string{oscar, bob}},
			{`meta.lastModified gt "2021-01-01T00:00:00Z"`, []string{oscar}},
			{`name.familyName eq "Lopez" and (emails.value co "example.org" or emails.value co "example.com")`, []string{olivia}},
			{`name.familyName eq "Lopez" and not (emails.value co "example.org")`, []string{oscar}},
			{`emails[type eq "work" and value ew ".net"]`, []string{oscar}},
			{`active eq false`, []string{bob}},
			{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "sales"`, []string{bob}},
			{`userName eq "oscar@example.com" and title eq "Chief"`, []string{oscar}}, // pushed down, then Go
			{`userName eq "oscar@example.com" and title eq "Clerk"`, nil},
			{`favouriteColour eq "blue"`, nil},
			{`title pr`, []string{oscar}},
		} {
			r := h.must(http.StatusOK, h.do("GET", "/Users"+filterQuery(tc.filter), ""))
			if got := ids(r); !slices.Equal(got, tc.want) || num(t, r.body["totalResults"]) != len(tc.want) {
				t.Errorf("%s: got %v (total %v), want %v", tc.filter, got, r.body["totalResults"], tc.want)
			}
		}

		for _, f := range []string{`userName eq`, `active gt true`, `meta.created gt "last week"`, `emails[type eq "work"`, `userName eq "x" or`} {
			h.mustError(http.StatusBadRequest, scimInvalidFilter, h.do("GET", "/Users"+filterQuery(f), ""))
		}
	})
}

// TestFilterScanLimit: a filter evaluated in Go refuses to read more than
// MaxScan resources; the indexed equalities still work.
func TestFilterScanLimit(t *testing.T) {
	h := newHarness(t, stores[0].open(t), func(o *Options) { o.MaxScan = 2 })
	for i := range 3 {
		h.createUser(userBody(fmt.Sprintf("scan%d@example.com", i)))
	}
	h.mustError(http.StatusBadRequest, scimTooMany, h.do("GET", "/Users"+filterQuery(`userName sw "scan"`), ""))
	r := h.must(http.StatusOK, h.do("GET", "/Users"+filterQuery(`userName eq "scan1@example.com"`), ""))
	if len(ids(r)) != 1 {
		t.Errorf("indexed filter under the scan limit: %s", r.raw)
	}
}
