package pac

import (
	"strconv"
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything at all", true},
		{"?", "", false},
		{"?", "a", true},
		{"?", "é", true},
		{"??", "é", false},
		{"a*", "a", true},
		{"*a", "ba", true},
		{"*a", "ab", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYYcd", false},
		{"*.example.com", "www.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "wwwXexample.com", false},
		{"*ab*ab*", "xxabyyabzz", true},
		{"*ab*ab*", "xxabyyzz", false},
		{"***", "x", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*?", "", false},
		{"*?", "é", true},
		{"é*", "éa", true},
	}
	for _, tc := range tests {
		g := compileGlob(tc.pattern)
		got, err := g.match(tc.s)
		if err != nil || got != tc.want {
			t.Errorf("shExpMatch(%q, %q) = %v, %v; want %v", tc.s, tc.pattern, got, err, tc.want)
		}
		if g.re != nil {
			t.Errorf("pattern %q took the regexp path", tc.pattern)
		}
	}
}

// TestGlobAgainstRegexp checks the glob matcher against the browsers'
// definition (a JavaScript regexp built from the pattern) on many pairs.
func TestGlobAgainstRegexp(t *testing.T) {
	alphabet := []string{"a", "b", ".", "*", "?", "é"}
	subjects := []string{"", "a", "b", "ab", "ba", "a.b", "aab", "abab", "é", "aé", "éé.b", "a.a.a", "bbbb"}
	var patterns []string
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		patterns = append(patterns, prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(prefix+c, n-1)
		}
	}
	gen("", 4)
	for _, p := range patterns {
		re := compileGlobRegexp(p)
		for _, s := range subjects {
			want, err := re.MatchString(s)
			if err != nil {
				t.Fatal(err)
			}
			if got := globMatch(p, s); got != want {
				t.Fatalf("globMatch(%q, %q) = %v, the regexp says %v", p, s, got, want)
			}
		}
	}
}

func TestGlobRegexpPath(t *testing.T) {
	g := compileGlob("*.(a|b).com")
	if g.re == nil {
		t.Fatal("alternation did not take the regexp path")
	}
	if ok, _ := g.match("x.a.com"); !ok {
		t.Error("x.a.com did not match")
	}
	if g := compileGlob("(["); g.err == nil {
		t.Error("an invalid regexp compiled")
	}
	// A catastrophic pattern is stopped by the match timeout, not left to run.
	g = compileGlob("(a*)*b")
	if _, err := g.match(strings.Repeat("a", 40)); err == nil {
		t.Log("(a*)*b finished quickly; nothing to stop")
	}
}

func TestGlobCacheBounded(t *testing.T) {
	var c globCache
	for i := 0; i < maxCachedGlobs+100; i++ {
		c.get("host" + strconv.Itoa(i) + ".*")
	}
	if n := c.n.Load(); n > maxCachedGlobs {
		t.Fatalf("%d cached patterns, limit %d", n, maxCachedGlobs)
	}
}

func TestHasLineTerminator(t *testing.T) {
	for s, want := range map[string]bool{"": false, "abc": false, "a\nb": true, "\r": true, "a\u2028": true,
		"\u2029b": true, "é€\u2027": false, "\xe2": false} {
		if got := hasLineTerminator(s); got != want {
			t.Errorf("hasLineTerminator(%q) = %v", s, got)
		}
	}
}
