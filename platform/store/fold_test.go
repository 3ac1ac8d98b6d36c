package store

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFold(t *testing.T) {
	same := [][2]string{
		{"Alice", "aLICE"},
		{"ÉLODIE", "élodie"},
		{"K", "\u212a"}, // Kelvin sign
		{"s", "ſ"},      // long s
		{"ΣΑΣ", "σας"},  // final sigma
	}
	for _, p := range same {
		if fold(p[0]) != fold(p[1]) {
			t.Errorf("fold(%q) = %q, fold(%q) = %q, want equal", p[0], fold(p[0]), p[1], fold(p[1]))
		}
		if !strings.EqualFold(p[0], p[1]) {
			t.Errorf("test case %q, %q: not EqualFold", p[0], p[1])
		}
	}
	differ := [][2]string{{"a", "b"}, {"\xff", "\xfe"}, {"\xff", "\ufffd"}, {"ss", "ß"}}
	for _, p := range differ {
		if fold(p[0]) == fold(p[1]) {
			t.Errorf("fold(%q) == fold(%q)", p[0], p[1])
		}
	}
}

func FuzzFold(f *testing.F) {
	f.Add("Alice", "ALICE")
	f.Add("\u212a", "k")
	f.Fuzz(func(t *testing.T, a, b string) {
		// EqualFold reads every invalid byte as U+FFFD; fold keeps them
		// apart, deliberately.
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			return
		}
		if (fold(a) == fold(b)) != strings.EqualFold(a, b) {
			t.Errorf("fold(%q) = %q, fold(%q) = %q; EqualFold = %v", a, fold(a), b, fold(b), strings.EqualFold(a, b))
		}
	})
}
