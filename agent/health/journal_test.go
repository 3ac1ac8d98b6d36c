package health

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func minutes(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

func openJournal(t *testing.T, path string, o JournalOptions) *Journal {
	t.Helper()
	j, err := OpenJournal(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func record(t *testing.T, j *Journal, s State, reason string, at time.Time) {
	t.Helper()
	if err := j.Record(s, reason, at); err != nil {
		t.Fatal(err)
	}
}

func checkPeriods(t *testing.T, what string, got, want []Period) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b Period) bool {
		return a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.State == b.State && a.Reason == b.Reason
	}) {
		t.Errorf("%s: periods\n%+v\nwant\n%+v", what, got, want)
	}
}

const refused = "gateway unreachable: dial tcp 192.0.2.1:3128: connect: connection refused"

// TestJournalRestart records transitions across two restarts and checks
// the periods, and the file's lines, after each.
func TestJournalRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "failopen.jsonl")
	j := openJournal(t, path, JournalOptions{})
	record(t, j, Connected, "", minutes(0)) // nothing open: nothing to write
	record(t, j, FailOpen, refused, minutes(1))
	record(t, j, FailOpen, "gateway unreachable: i/o timeout", minutes(2)) // still the same period
	record(t, j, Connected, "", minutes(5))
	record(t, j, FailClosed, "", minutes(6)) // not DIRECT: no period
	record(t, j, CaptivePortal, "captive portal", minutes(10))
	record(t, j, FailOpen, refused, minutes(12)) // portal passed, gateway still down
	want := []Period{
		{Start: minutes(1), End: minutes(5), State: FailOpen, Reason: refused},
		{Start: minutes(10), End: minutes(12), State: CaptivePortal, Reason: "captive portal"},
		{Start: minutes(12), State: FailOpen, Reason: refused},
	}
	checkPeriods(t, "before the restart", j.Periods(), want)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Record(Connected, "", minutes(13)); err == nil {
		t.Error("Record after Close succeeded")
	}

	// The agent restarts during the outage: the period stays open, and the
	// same state continues it.
	j = openJournal(t, path, JournalOptions{})
	checkPeriods(t, "after the restart", j.Periods(), want)
	record(t, j, FailOpen, "gateway unreachable: network is unreachable", minutes(20))
	record(t, j, NeedsLogin, "", minutes(21))
	want[2].End = minutes(21)
	checkPeriods(t, "closed after the restart", j.Periods(), want)
	j.Close()

	j = openJournal(t, path, JournalOptions{})
	checkPeriods(t, "after the second restart", j.Periods(), want)

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want one per opening and one per closing:\n%s", len(lines), b)
	}
	if want := `{"start":"2026-03-01T09:01:00Z","state":"fail-open","reason":"` + refused + `"}`; lines[0] != want {
		t.Errorf("first line\n%s\nwant\n%s", lines[0], want)
	}
	if want := `{"start":"2026-03-01T09:01:00Z","end":"2026-03-01T09:05:00Z","state":"fail-open","reason":"` + refused + `"}`; lines[1] != want {
		t.Errorf("second line\n%s\nwant\n%s", lines[1], want)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if filepath.Separator == '/' && fi.Mode().Perm() != 0o600 {
		t.Errorf("journal file mode %v, want 0600", fi.Mode())
	}
}

// TestJournalRestartOtherState checks that after a restart a different
// DIRECT state closes the open period and starts its own.
func TestJournalRestartOtherState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "failopen.jsonl")
	j := openJournal(t, path, JournalOptions{})
	record(t, j, FailOpen, refused, minutes(0))
	j.Close()
	j = openJournal(t, path, JournalOptions{})
	record(t, j, CaptivePortal, "captive portal", minutes(3))
	checkPeriods(t, "after the restart", j.Periods(), []Period{
		{Start: minutes(0), End: minutes(3), State: FailOpen, Reason: refused},
		{Start: minutes(3), State: CaptivePortal, Reason: "captive portal"},
	})
}

// TestJournalSameInstant checks that periods of no length, which a coarse
// clock can give, stay distinct after a restart: a line supersedes only an
// open period's line.
func TestJournalSameInstant(t *testing.T) {
	path := filepath.Join(t.TempDir(), "failopen.jsonl")
	j := openJournal(t, path, JournalOptions{})
	record(t, j, FailOpen, refused, minutes(0))
	record(t, j, Connected, "", minutes(0))
	record(t, j, FailOpen, refused, minutes(0))
	want := []Period{
		{Start: minutes(0), End: minutes(0), State: FailOpen, Reason: refused},
		{Start: minutes(0), State: FailOpen, Reason: refused},
	}
	checkPeriods(t, "recorded", j.Periods(), want)
	j.Close()
	j = openJournal(t, path, JournalOptions{})
	checkPeriods(t, "after a restart", j.Periods(), want)
}

// TestJournalRotation records many periods in a small journal: it rotates,
// stays bounded, forgets only what the rotation deleted, and reads back the
// same after a restart, including a period open across a rotation.
func TestJournalRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "failopen.jsonl")
	const max = 600
	j := openJournal(t, path, JournalOptions{MaxBytes: max})
	var all []Period
	for i := range 40 {
		start, end := minutes(10*i), minutes(10*i+3)
		state, reason := FailOpen, refused
		if i%3 == 0 {
			state, reason = CaptivePortal, "captive portal"
		}
		record(t, j, state, reason, start)
		all = append(all, Period{Start: start, State: state, Reason: reason})
		if i == 39 {
			break // the last one stays open
		}
		record(t, j, Connected, "", end)
		all[i].End = end
	}
	got := j.Periods()
	if len(got) == 0 || len(got) >= len(all) {
		t.Fatalf("%d periods of %d kept; want a non-empty suffix", len(got), len(all))
	}
	checkPeriods(t, "kept", got, all[len(all)-len(got):])

	for _, p := range []string{path, path + ".1"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > max {
			t.Errorf("%s: %d bytes, over %d", filepath.Base(p), fi.Size(), max)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d files in the directory, want the journal and one rotated copy", len(entries))
	}

	j.Close()
	j = openJournal(t, path, JournalOptions{MaxBytes: max})
	checkPeriods(t, "after a restart", j.Periods(), got)

	// Close the open period until a rotation falls between its lines.
	for i := 40; ; i++ {
		before := fileSize(t, path)
		record(t, j, Connected, "", minutes(10*i-7))
		all[len(all)-1].End = minutes(10*i - 7)
		if fileSize(t, path) < before {
			break // rotated on the closing line
		}
		if i == 80 {
			t.Fatal("no rotation")
		}
		record(t, j, FailOpen, refused, minutes(10*i))
		all = append(all, Period{Start: minutes(10 * i), State: FailOpen, Reason: refused})
	}
	got = j.Periods()
	checkPeriods(t, "closed across a rotation", got, all[len(all)-len(got):])
	j.Close()
	j = openJournal(t, path, JournalOptions{MaxBytes: max})
	checkPeriods(t, "closed across a rotation, after a restart", j.Periods(), got)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestJournalTornLine checks that a line torn by a crash is skipped and
// does not spoil the next one.
func TestJournalTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "failopen.jsonl")
	j := openJournal(t, path, JournalOptions{})
	record(t, j, FailOpen, refused, minutes(0))
	record(t, j, Connected, "", minutes(1))
	j.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"start":"2026-03-01T09:02:00Z","sta`)
	f.Close()

	j = openJournal(t, path, JournalOptions{})
	want := []Period{{Start: minutes(0), End: minutes(1), State: FailOpen, Reason: refused}}
	checkPeriods(t, "torn line skipped", j.Periods(), want)
	record(t, j, CaptivePortal, "captive portal", minutes(5))
	j.Close()
	j = openJournal(t, path, JournalOptions{})
	want = append(want, Period{Start: minutes(5), State: CaptivePortal, Reason: "captive portal"})
	checkPeriods(t, "after the torn line", j.Periods(), want)
}

func TestJournalReasonClipped(t *testing.T) {
	j := openJournal(t, filepath.Join(t.TempDir(), "failopen.jsonl"), JournalOptions{})
	long := "gateway unreachable: " + strings.Repeat("é", 400)
	record(t, j, FailOpen, long, minutes(0))
	got := j.Periods()[0].Reason
	if len(got) > maxReason || !utf8.ValidString(got) || !strings.HasPrefix(long, got) {
		t.Errorf("reason of %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

func FuzzParseJournal(f *testing.F) {
	f.Add([]byte(`{"start":"2026-03-01T09:01:00Z","state":"fail-open","reason":"x"}` + "\n"))
	f.Add([]byte(`{"start":"2026-03-01T09:01:00Z","end":"2026-03-01T09:05:00Z","state":"captive-portal","reason":""}` + "\n" + `{"sta`))
	f.Add([]byte(`{"start":"2026-03-01T09:01:00Z","state":"connected"}` + "\n{}\n\n[1]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps := parseJournal(b)
		if len(ps) > bytes.Count(b, []byte("\n"))+1 {
			t.Fatalf("%d periods from %d lines", len(ps), bytes.Count(b, []byte("\n"))+1)
		}
		for _, p := range ps {
			if p.Start.IsZero() || p.State.Route() != RouteDirect {
				t.Fatalf("period %+v accepted", p)
			}
		}
	})
}

// TestJournalRotationFails checks that a rotation that cannot happen
// (here <path>.1 is a directory) reports an error but loses no line.
func TestJournalRotationFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "failopen.jsonl")
	j := openJournal(t, path, JournalOptions{MaxBytes: 100})
	record(t, j, FailOpen, refused, minutes(0)) // first line: no rotation yet
	if err := os.MkdirAll(filepath.Join(path+".1", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := j.Record(Connected, "", minutes(1)); err == nil || !strings.Contains(err.Error(), "health: rotating the journal") {
		t.Errorf("Record: %v, want the rotation error", err)
	}
	want := []Period{{Start: minutes(0), End: minutes(1), State: FailOpen, Reason: refused}}
	checkPeriods(t, "in memory", j.Periods(), want)
	j.Close()
	if err := os.RemoveAll(path + ".1"); err != nil {
		t.Fatal(err)
	}
	j = openJournal(t, path, JournalOptions{MaxBytes: 100})
	checkPeriods(t, "on disk", j.Periods(), want)
}
