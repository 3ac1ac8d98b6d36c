package sysproxy

import (
	"bytes"
	"strings"
	"testing"
)

const pac = "http://127.0.0.1:3129/proxy.pac"

func TestKioslavercSet(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"empty", "", "[Proxy Settings]\nProxy Config Script=" + pac + "\nProxyType=2\n"},
		{"other groups, no final newline", "[General]\nA=1",
			"[General]\nA=1\n\n[Proxy Settings]\nProxy Config Script=" + pac + "\nProxyType=2\n"},
		{"keys replaced in place, spacing and flags",
			"[Proxy Settings]\nProxyType = 1\nProxy Config Script[$e]=http://old/x.pac\nhttpProxy=http://p:8080 8080\n\n[Other]\nProxyType=5\n",
			"[Proxy Settings]\nProxyType=2\nProxy Config Script=" + pac + "\nhttpProxy=http://p:8080 8080\n\n[Other]\nProxyType=5\n"},
		{"missing key added before the blank separator",
			"[Proxy Settings]\nProxyType=0\n\n[Other]\nX=1\n",
			"[Proxy Settings]\nProxyType=2\nProxy Config Script=" + pac + "\n\n[Other]\nX=1\n"},
		{"duplicates dropped", "[Proxy Settings]\nProxyType=0\nProxyType=1\n",
			"[Proxy Settings]\nProxyType=2\nProxy Config Script=" + pac + "\n"},
		{"immutable group", "[Proxy Settings][$i]\nProxyType=0\n",
			"[Proxy Settings][$i]\nProxyType=2\nProxy Config Script=" + pac + "\n"},
		{"nested group is another group", "[Proxy Settings][Sub]\nProxyType=0\n",
			"[Proxy Settings][Sub]\nProxyType=0\n\n[Proxy Settings]\nProxy Config Script=" + pac + "\nProxyType=2\n"},
	} {
		got := string(kioslavercSet([]byte(c.in), pac))
		if got != c.want {
			t.Errorf("%s:\n%q\nwant\n%q", c.name, got, c.want)
		}
		if again := string(kioslavercSet([]byte(got), pac)); again != got {
			t.Errorf("%s: not idempotent:\n%q", c.name, again)
		}
	}
}

func TestEnvironmentSet(t *testing.T) {
	block := envBlock(testSettings)
	b := strings.Join(block, "")
	for _, c := range []struct {
		name, in string
		exists   bool
		want     string
	}{
		{"absent file", "", false, b},
		{"appended", "LANG=C\n", true, "LANG=C\n" + b},
		{"no final newline", "LANG=C", true, "LANG=C\n" + b},
		{"stale block replaced in place", "A=1\n" + envBegin + "\nhttp_proxy=old\n" + envEnd + "\nB=2\n", true, "A=1\n" + b + "B=2\n"},
		{"block without its end marker", "A=1\n" + envBegin + "\nhttp_proxy=old\nno_proxy=x\nB=2\n", true, "A=1\n" + b + "B=2\n"},
		{"overridden block moves to the end", b + "export https_proxy=http://x:1\n", true, "export https_proxy=http://x:1\n" + b},
		{"unrelated later lines stay after", b + "EDITOR=vi\n", true, b + "EDITOR=vi\n"},
	} {
		got, ok := environmentSet([]byte(c.in), c.exists, block)
		if string(got) != c.want || !ok {
			t.Errorf("%s:\n%q\nwant\n%q", c.name, got, c.want)
		}
		if again, _ := environmentSet(got, true, block); !bytes.Equal(again, got) {
			t.Errorf("%s: not idempotent:\n%q", c.name, again)
		}
	}
	if got, ok := environmentSet([]byte("A=1\n"+b+"B=2\n"), true, nil); string(got) != "A=1\nB=2\n" || !ok {
		t.Errorf("removing the block: %q", got)
	}
}

func TestDconfProfile(t *testing.T) {
	if got := string(dconfProfileSet(nil, false)); got != dconfNewProfile {
		t.Errorf("new profile %q", got)
	}
	in := "user-db:user\nsystem-db:local\nsystem-db:site"
	got := dconfProfileSet([]byte(in), true)
	if string(got) != in+"\nsystem-db:vigie\n" {
		t.Errorf("profile %q", got)
	}
	if again := dconfProfileSet(got, true); !bytes.Equal(again, got) {
		t.Errorf("not idempotent: %q", again)
	}
	if back, ok := dconfProfileUndo(append(got, "system-db:extra\n"...), []byte(in), true); string(back) != in+"\nsystem-db:extra\n" || !ok {
		t.Errorf("undo: %q", back)
	}
	if _, ok := dconfProfileUndo([]byte(dconfNewProfile), nil, false); ok {
		t.Error("undo kept the profile we created")
	}
}

// Fuzz the edits of files that users and administrators also edit: set is
// idempotent and puts our keys in; undo after set gives the input back.

func FuzzKioslaverc(f *testing.F) {
	f.Add([]byte(aliceKioslaverc))
	f.Add([]byte("[Proxy Settings]\nProxyType=1"))
	f.Add([]byte("[A]\n[Proxy Settings][$i]\n\n\n[B]\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := kioslavercSet(in, pac)
		if again := kioslavercSet(out, pac); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%q\n%q", out, again)
		}
		ls := splitLines(out)
		hdr, end, ok := iniGroupRange(ls, kdeGroup)
		if !ok {
			t.Fatalf("no group in %q", out)
		}
		var typ, script int
		for _, l := range ls[hdr+1 : end] {
			switch l {
			case "ProxyType=2\n":
				typ++
			case "Proxy Config Script=" + pac + "\n":
				script++
			}
		}
		if typ != 1 || script != 1 {
			t.Fatalf("keys not set once in %q", out)
		}
		if !roundTrips(in) {
			return
		}
		back, keep := kioslavercUndo(out, in, true)
		if !keep || !bytes.Equal(back, in) {
			t.Fatalf("undo(set(x)) != x:\n%q\n%q\n%q", in, out, back)
		}
	})
}

// roundTrips reports whether undo can give in back: set drops duplicate
// keys and the group's blank lines, and undo cannot know them.
func roundTrips(in []byte) bool {
	ls := splitLines(in)
	hdr, end, ok := iniGroupRange(ls, kdeGroup)
	if !ok {
		return true
	}
	seen := map[string]int{}
	for _, l := range ls[hdr+1 : end] {
		seen[iniKey(l)]++
	}
	return seen[kdeTypeKey] <= 1 && seen[kdeScriptKey] <= 1
}

func FuzzEnvironment(f *testing.F) {
	f.Add([]byte(origEnvironment), true)
	f.Add([]byte("LANG=C"), true)
	f.Add([]byte(""), false)
	f.Add([]byte("http_proxy=http://a:1\n"), true)
	block := envBlock(testSettings)
	f.Fuzz(func(t *testing.T, in []byte, exists bool) {
		if !exists {
			in = nil
		}
		out, keep := environmentSet(in, exists, block)
		if !keep {
			t.Fatal("block dropped")
		}
		if again, _ := environmentSet(out, true, block); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%q\n%q", out, again)
		}
		if !bytes.Contains(out, []byte(strings.Join(block, ""))) {
			t.Fatalf("no block in %q", out)
		}
		if bytes.Contains(in, []byte(envBegin)) {
			return // an old block of ours is replaced, not given back
		}
		back, keep := environmentUndo(out, in, exists)
		if keep != exists || !bytes.Equal(back, in) {
			t.Fatalf("undo(set(x)) != x:\n%q\n%q\n%q", in, out, back)
		}
	})
}
