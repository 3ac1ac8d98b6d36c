package main

import (
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	var out, errb strings.Builder
	if code := run(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "Usage:") {
		t.Errorf("no arguments: exit %d, stderr %q", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "platform serve") {
		t.Errorf("help: exit %d, stdout %q", code, out.String())
	}
}
