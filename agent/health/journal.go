package health

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Period is one stretch of time in which the agent sent traffic DIRECT
// instead of through the gateway.
type Period struct {
	Start time.Time `json:"start"`
	// End is zero while the period is open.
	End time.Time `json:"end,omitzero"`
	// State is FailOpen or CaptivePortal.
	State State `json:"state"`
	// Reason is why, as given to Record when the period began:
	// "gateway unreachable: <last probe error>" or "captive portal".
	Reason string `json:"reason"`
}

// Open reports whether the period has not ended.
func (p Period) Open() bool { return p.End.IsZero() }

// JournalOptions configures a Journal. Zero values take the defaults.
type JournalOptions struct {
	// MaxBytes bounds the journal file: a line that would take it past
	// MaxBytes first moves it to <path>.1, replacing the one there, so the
	// journal takes at most about twice MaxBytes on disk. Default 1 MiB,
	// thousands of periods.
	MaxBytes int64
}

// maxReason bounds a recorded reason, and with it a line.
const maxReason = 512

// Journal is the audit trail of fail-open periods: Record is told every
// state transition, and the journal keeps the periods in which traffic
// went DIRECT (State.Route is RouteDirect: FailOpen and CaptivePortal).
//
// On disk it is a file of JSON lines, each a whole Period, appended and
// fsynced: a line when a period opens, another with the same Start when it
// ends, which supersedes the first. Nothing is rewritten in place; a line
// torn by a crash is skipped when the file is read. When the file would
// exceed MaxBytes it becomes <path>.1 and a new file starts.
//
// A period still open when the journal is opened (the agent stopped or
// crashed during it) stays open: the process that began it never saw it
// end, and an audit trail should rather overstate unfiltered time than
// hide some. The new process's first Record closes it (at that time) or
// continues it.
//
// A Journal is safe for concurrent use.
type Journal struct {
	path string
	max  int64

	mu      sync.Mutex
	f       *os.File
	size    int64
	torn    bool // the file does not end in a newline: start with one
	gen     int  // generation of the file at path; <path>.1 holds gen-1
	entries []entry
	closed  bool
}

// entry is a Period and the generation of the file holding its last line,
// so that rotation forgets what it deletes.
type entry struct {
	p   Period
	gen int
}

// OpenJournal opens, or creates, the journal at path (and reads
// <path>.1 if there is one). The directory must exist.
func OpenJournal(path string, o JournalOptions) (*Journal, error) {
	j := &Journal{path: path, max: o.MaxBytes, gen: 1}
	if j.max <= 0 {
		j.max = 1 << 20
	}
	if err := j.load(path+".1", 0); err != nil {
		return nil, err
	}
	if err := j.load(path, 1); err != nil {
		return nil, err
	}
	if err := j.open(); err != nil {
		return nil, err
	}
	return j, nil
}

// load reads the periods of one file, generation gen; a missing file is
// empty.
func (j *Journal) load(path string, gen int) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("health: reading the journal: %w", err)
	}
	if gen == 1 {
		j.torn = len(b) > 0 && b[len(b)-1] != '\n'
	}
	for _, p := range parseJournal(b) {
		j.merge(p, gen)
	}
	return nil
}

// parseJournal returns the periods in the lines of b, in order, skipping
// lines that are not a valid period (a line torn by a crash).
func parseJournal(b []byte) []Period {
	var ps []Period
	for line := range bytes.Lines(b) {
		var p Period
		if json.Unmarshal(line, &p) != nil || p.Start.IsZero() || p.State.Route() != RouteDirect {
			continue
		}
		ps = append(ps, p)
	}
	return ps
}

// merge adds p from a line of generation gen: a line with the Start and
// State of the last period, while that one is open, is its later version.
func (j *Journal) merge(p Period, gen int) {
	if n := len(j.entries); n > 0 && j.entries[n-1].p.Open() &&
		j.entries[n-1].p.Start.Equal(p.Start) && j.entries[n-1].p.State == p.State {
		j.entries[n-1] = entry{p, gen}
		return
	}
	j.entries = append(j.entries, entry{p, gen})
}

// Record tells the journal that the agent is in state since at. Entering a
// DIRECT state (FailOpen, CaptivePortal) opens a period with reason, unless
// one of that state is open already (a repeat, or the same outage across a
// restart); a period of the other DIRECT state is closed first. Any other
// state closes the open period, if any. Only those changes write to disk.
//
// The error is about the file; the period is recorded in memory anyway.
func (j *Journal) Record(state State, reason string, at time.Time) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return errors.New("health: journal closed")
	}
	direct := state.Route() == RouteDirect
	n := len(j.entries)
	var errs []error
	if n > 0 && j.entries[n-1].p.Open() {
		if direct && j.entries[n-1].p.State == state {
			return nil
		}
		j.entries[n-1].p.End = at
		errs = append(errs, j.writeLast())
	}
	if direct {
		j.entries = append(j.entries, entry{p: Period{Start: at, State: state, Reason: clip(reason)}})
		errs = append(errs, j.writeLast())
	}
	return errors.Join(errs...)
}

// clip bounds a reason to maxReason bytes of valid UTF-8.
func clip(s string) string {
	if len(s) <= maxReason {
		return s
	}
	return strings.ToValidUTF8(s[:maxReason], "")
}

// writeLast appends the last entry's period as a line, rotating first if
// the line would take the file past max, and fsyncs it. A failed rotation
// does not lose the line: it goes to the unrotated file.
func (j *Journal) writeLast() error {
	line, err := json.Marshal(j.entries[len(j.entries)-1].p)
	if err != nil {
		return fmt.Errorf("health: journal: %w", err)
	}
	line = append(line, '\n')
	var rotErr error
	if j.size > 0 && j.size+int64(len(line)) > j.max {
		rotErr = j.rotate()
	}
	if j.f == nil {
		if err := j.open(); err != nil {
			return errors.Join(rotErr, err)
		}
	}
	if j.torn {
		line = append([]byte{'\n'}, line...)
	}
	n, err := j.f.Write(line)
	j.size += int64(n)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		return errors.Join(rotErr, fmt.Errorf("health: writing the journal: %w", err))
	}
	j.torn = false
	j.entries[len(j.entries)-1].gen = j.gen
	return rotErr
}

// open opens the file at path for appending, creating it if need be.
func (j *Journal) open() error {
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("health: opening the journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("health: opening the journal: %w", err)
	}
	j.f, j.size = f, fi.Size()
	return nil
}

// rotate moves the file to <path>.1, replacing the old copy, and forgets
// the periods that only the old copy held, except the last one, which is
// being written. The caller opens the new file.
func (j *Journal) rotate() error {
	err := j.f.Close()
	j.f = nil
	if err == nil {
		err = os.Rename(j.path, j.path+".1")
	}
	if err != nil {
		return fmt.Errorf("health: rotating the journal: %w", err)
	}
	kept := j.entries[:0]
	for i, e := range j.entries {
		if e.gen >= j.gen || i == len(j.entries)-1 {
			kept = append(kept, e)
		}
	}
	clear(j.entries[len(kept):])
	j.entries = kept
	j.gen++
	j.torn = false
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		return fmt.Errorf("health: rotating the journal: %w", err)
	}
	return nil
}

// Periods returns the recorded periods, oldest first; the last one may be
// open. They are those of the file and its rotated copy.
func (j *Journal) Periods() []Period {
	j.mu.Lock()
	defer j.mu.Unlock()
	ps := make([]Period, len(j.entries))
	for i, e := range j.entries {
		ps[i] = e.p
	}
	return ps
}

// Close closes the file. An open period stays open on disk (see Journal).
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}
