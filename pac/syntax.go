package pac

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dop251/goja"
	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
)

// SyntaxError is a PAC script that does not compile, with where.
type SyntaxError struct {
	Script string // the script's name
	Line   int    // 1-based
	Column int    // 1-based, in bytes
	Msg    string
	Source string // the offending line of the script
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("pac: %s:%d:%d: SyntaxError: %s", e.Script, e.Line, e.Column, e.Msg)
}

// maxRepairs bounds compile's repair loop; each pass fixes one spot.
const maxRepairs = 1000

// compile parses and compiles a PAC script. Browsers run PAC files as
// classic sloppy-mode scripts with the web-compatibility syntax of ECMAScript
// Annex B, some of which goja's parser refuses; compile repairs those spots
// in place (same length, so positions in later errors stay true) and tries
// again:
//   - a label before a function declaration ("WPAD: function …") is blanked:
//     such a label can never be the target of a break, so it means nothing;
//   - an HTML comment opener "<!--" becomes "//", and "-->" at the start of a
//     line becomes a line comment.
func compile(name, src string) (*goja.Program, *ast.Program, error) {
	buf := []byte(src)
	for range maxRepairs {
		offset, msg := -1, ""
		tree, err := parser.ParseFile(nil, name, string(buf), 0, parser.WithDisableSourceMaps)
		if err == nil {
			prg, err := goja.CompileAST(tree, false)
			if err == nil {
				return prg, tree, nil
			}
			var ce *goja.CompilerSyntaxError
			if !errors.As(err, &ce) {
				return nil, nil, fmt.Errorf("pac: %s: %w", name, err)
			}
			offset, msg = ce.Offset, ce.Message
		} else {
			var list parser.ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				return nil, nil, fmt.Errorf("pac: %s: %w", name, err)
			}
			offset, msg = lineColOffset(buf, list[0].Position.Line, list[0].Position.Column), list[0].Message
		}
		if !repair(buf, offset) {
			return nil, nil, newSyntaxError(name, string(buf), offset, msg)
		}
	}
	return nil, nil, fmt.Errorf("pac: %s: too many syntax repairs", name)
}

// repair fixes the construct at offset if it is one compile knows, and
// reports whether it changed anything.
func repair(buf []byte, offset int) bool {
	if offset < 0 || offset > len(buf) {
		return false
	}
	rest := buf[offset:]
	switch {
	case hasPrefix(rest, "function"):
		return blankLabels(buf, offset)
	case hasPrefix(rest, "<!--"):
		copy(rest, "//  ")
		return true
	}
	// "-->" at the start of a line: the parser reports it, or the token
	// after it.
	i := strings.LastIndexByte(string(buf[:offset]), '\n') + 1
	for i < len(buf) && (buf[i] == ' ' || buf[i] == '\t') {
		i++
	}
	if hasPrefix(buf[i:], "-->") {
		copy(buf[i:], "// ")
		return true
	}
	return false
}

// blankLabels replaces "Label:" (and stacked labels) right before the
// function declaration at offset with spaces.
func blankLabels(buf []byte, offset int) bool {
	changed := false
	i := offset
	for {
		j := skipSpaceBack(buf, i)
		if j == 0 || buf[j-1] != ':' {
			return changed
		}
		k := skipSpaceBack(buf, j-1)
		start := k
		for start > 0 && isIdentByte(buf[start-1]) {
			start--
		}
		if start == k || !isIdentStart(buf[start]) {
			return changed
		}
		for p := start; p < j; p++ {
			if buf[p] != '\n' && buf[p] != '\r' {
				buf[p] = ' '
			}
		}
		changed, i = true, start
	}
}

func skipSpaceBack(buf []byte, i int) int {
	for i > 0 && strings.IndexByte(" \t\r\n\v\f", buf[i-1]) >= 0 {
		i--
	}
	return i
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isIdentByte(c byte) bool { return isIdentStart(c) || '0' <= c && c <= '9' }

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

func lineColOffset(buf []byte, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(string(buf[off:]), '\n')
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	return off + col - 1
}

func newSyntaxError(name, src string, offset int, msg string) *SyntaxError {
	e := &SyntaxError{Script: name, Msg: msg, Line: 1, Column: 1}
	if offset < 0 || offset > len(src) {
		return e
	}
	lineStart := strings.LastIndexByte(src[:offset], '\n') + 1
	e.Line = strings.Count(src[:lineStart], "\n") + 1
	e.Column = offset - lineStart + 1
	e.Source, _, _ = strings.Cut(src[lineStart:], "\n")
	e.Source = strings.TrimRight(e.Source, "\r")
	return e
}
