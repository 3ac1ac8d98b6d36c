package policy

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"sort"
	"strings"
)

// ShippedCategories is the domain-to-category list the platform ships; the
// admin API can replace it with a newer one. Format: one "domain
// category[,category…]" per line; '#' starts a comment; the first comment
// line "# version: V" names the version.
//
//go:embed categories.txt
var ShippedCategories []byte

// Categories maps domains to categories; a host gets the categories of
// every domain it is under. Immutable once parsed.
type Categories struct {
	Version  string
	byDomain map[string][]string
}

// ParseCategories reads a list in the format of ShippedCategories.
func ParseCategories(data []byte) (*Categories, error) {
	c := &Categories{byDomain: map[string][]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "# version:"); ok && c.Version == "" {
			c.Version = strings.TrimSpace(v)
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		domain, cats, ok := strings.Cut(line, " ")
		domain = strings.ToLower(strings.TrimPrefix(domain, "."))
		if !ok || checkHost(domain) != nil {
			return nil, fmt.Errorf("policy: categories line %d: want \"domain category[,category]\", got %q", n, line)
		}
		for _, cat := range strings.Split(strings.TrimSpace(cats), ",") {
			cat = strings.TrimSpace(cat)
			if !validCategory(cat) {
				return nil, fmt.Errorf("policy: categories line %d: category %q: use lower-case letters, digits, '-' and '_'", n, cat)
			}
			c.byDomain[domain] = append(c.byDomain[domain], cat)
		}
	}
	if c.Version == "" {
		return nil, fmt.Errorf("policy: categories: the first comment must be \"# version: V\"")
	}
	return c, sc.Err()
}

// Of returns the categories of host, sorted, without duplicates.
func (c *Categories) Of(host string) []string {
	if c == nil {
		return nil
	}
	var out []string
	for h := host; h != ""; {
		out = append(out, c.byDomain[h]...)
		_, rest, ok := strings.Cut(h, ".")
		if !ok {
			break
		}
		h = rest
	}
	if len(out) < 2 {
		return out
	}
	sort.Strings(out)
	j := 1
	for i := 1; i < len(out); i++ {
		if out[i] != out[j-1] {
			out[j] = out[i]
			j++
		}
	}
	return out[:j]
}

func validCategory(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	for i := 0; i < len(c); i++ {
		if b := c[i]; !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}
