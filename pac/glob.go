package pac

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
)

// A shExpMatch pattern, compiled once per script and pattern.
//
// Browsers implement shExpMatch by turning the pattern into a JavaScript
// regular expression: '.' is escaped, '*' becomes '.*', '?' becomes '.', and
// the result is anchored. Every other regular-expression character keeps its
// meaning, so real PAC files rely on "(a|b)" alternation and "[0-9]" classes.
// Patterns made only of literal characters, '*' and '?' (nearly all of them)
// are matched by a small glob matcher; the others are compiled with an
// ECMAScript-compatible regexp engine, as the browser does.
type glob struct {
	pattern string
	re      *regexp2.Regexp // nil for plain globs
	err     error           // the pattern is not a valid regular expression
}

// regexMatchTimeout bounds one regexp match, so that a pathological pattern
// cannot hold a runtime past its call limit.
const regexMatchTimeout = 100 * time.Millisecond

func compileGlob(pattern string) *glob {
	g := &glob{pattern: pattern}
	if !strings.ContainsAny(pattern, `\^$+()[]{}|/`) {
		return g
	}
	var b strings.Builder
	b.WriteByte('^')
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '.':
			b.WriteString(`\.`)
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteByte('.')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('$')
	g.re, g.err = regexp2.Compile(b.String(), regexp2.ECMAScript)
	if g.re != nil {
		g.re.MatchTimeout = regexMatchTimeout
	}
	return g
}

// match reports whether s matches the pattern.
func (g *glob) match(s string) (bool, error) {
	if g.err != nil {
		return false, g.err
	}
	if g.re == nil && !hasLineTerminator(s) {
		return globMatch(g.pattern, s), nil
	}
	re := g.re
	if re == nil {
		// A plain glob on a subject with line terminators: '.' in the
		// browser's regexp does not match them, which the glob matcher does
		// not model. Rare enough to compile on the spot.
		if re = compileGlobRegexp(g.pattern); re == nil {
			return false, nil
		}
	}
	return re.MatchString(s)
}

func compileGlobRegexp(pattern string) *regexp2.Regexp {
	var b strings.Builder
	b.WriteByte('^')
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteByte('.')
		default:
			b.WriteString(regexp2.Escape(string(r)))
		}
	}
	b.WriteByte('$')
	re, err := regexp2.Compile(b.String(), regexp2.ECMAScript)
	if err != nil {
		return nil
	}
	re.MatchTimeout = regexMatchTimeout
	return re
}

// hasLineTerminator reports whether s holds a character that '.' in a
// JavaScript regexp does not match: \n, \r, U+2028 or U+2029.
func hasLineTerminator(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n', '\r':
			return true
		case 0xE2: // the first byte of U+2028 and U+2029 in UTF-8
			if strings.HasPrefix(s[i:], "\u2028") || strings.HasPrefix(s[i:], "\u2029") {
				return true
			}
		}
	}
	return false
}

// globMatch matches s against a pattern where '*' is any run of characters
// and '?' exactly one character; everything else is literal. It backtracks
// only to the last '*', which is linear for the patterns PAC files use.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, resume := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				star, resume = p, i
				p++
				continue
			case '?':
				_, n := utf8.DecodeRuneInString(s[i:])
				p, i = p+1, i+n
				continue
			default:
				if c == s[i] {
					p, i = p+1, i+1
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[resume:])
		resume += n
		p, i = star+1, resume
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// globCache holds the compiled patterns of one script. Patterns usually come
// from the script's literals; the size bound stops a script that builds
// patterns from hosts from growing it without limit.
type globCache struct {
	m sync.Map // pattern string → *glob
	n atomic.Int32
}

const maxCachedGlobs = 4096

func (c *globCache) get(pattern string) *glob {
	if g, ok := c.m.Load(pattern); ok {
		return g.(*glob)
	}
	g := compileGlob(pattern)
	if c.n.Load() < maxCachedGlobs {
		if prev, loaded := c.m.LoadOrStore(pattern, g); loaded {
			return prev.(*glob)
		}
		c.n.Add(1)
	}
	return g
}
