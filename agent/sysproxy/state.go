package sysproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"vigie/agent/internal/atomicfile"
)

// stateName is the file in Options.StateDir that remembers, per target,
// what was there before the first Apply.
const stateName = "sysproxy.json"

const stateVersion = 1

// stateFile is the content of the state file.
type stateFile struct {
	Version int `json:"version"`
	// Settings is the last applied Settings, for Check. Nil after a
	// complete Restore.
	Settings *Settings `json:"-"`
	Applied  *applied  `json:"applied,omitempty"`
	// Targets holds, per target key, what capture and apply recorded.
	Targets map[string]savedTarget `json:"targets"`
}

// applied is Settings in the state file, with names of its own so that the
// file does not change with the exported type.
type applied struct {
	PACURL    string   `json:"pac_url"`
	ProxyAddr string   `json:"proxy_addr,omitempty"`
	Bypass    []string `json:"bypass,omitempty"`
}

type savedTarget struct {
	// Seq orders the targets as Apply first met them.
	Seq int `json:"seq"`
	// Saved is when the previous settings were captured.
	Saved time.Time `json:"saved"`
	// Record is the target's own record: previous content, what we wrote.
	Record json.RawMessage `json:"record"`
}

func (s *stateFile) empty() bool { return len(s.Targets) == 0 }

// keys returns the target keys in the order Apply first met them.
func (s *stateFile) keys() []string {
	keys := make([]string, 0, len(s.Targets))
	for k := range s.Targets {
		keys = append(keys, k)
	}
	slices.SortStableFunc(keys, func(a, b string) int {
		if c := s.Targets[a].Seq - s.Targets[b].Seq; c != 0 {
			return c
		}
		return compareStrings(a, b)
	})
	return keys
}

func (s *stateFile) nextSeq() int {
	n := 0
	for _, t := range s.Targets {
		n = max(n, t.Seq)
	}
	return n + 1
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type stateStore struct {
	dir string
}

func (s *stateStore) path() string { return filepath.Join(s.dir, stateName) }

// load reads the state file; a missing file is an empty state. A file that
// cannot be parsed is an error and is left alone: it may be the only copy
// of the settings to restore, and applying over it would record our own
// settings as the previous ones.
func (s *stateStore) load() (*stateFile, error) {
	st := &stateFile{Version: stateVersion, Targets: map[string]savedTarget{}}
	b, err := os.ReadFile(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sysproxy: read state: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("sysproxy: state file %s is corrupt (%v): it holds the settings to restore, so fix or remove it by hand", s.path(), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("sysproxy: state file %s has version %d, this agent reads %d", s.path(), st.Version, stateVersion)
	}
	if st.Targets == nil {
		st.Targets = map[string]savedTarget{}
	}
	if a := st.Applied; a != nil {
		st.Settings = &Settings{PACURL: a.PACURL, ProxyAddr: a.ProxyAddr, Bypass: a.Bypass}
	}
	return st, nil
}

// save writes the state atomically, or removes the file when there is
// nothing left to remember.
func (s *stateStore) save(st *stateFile) error {
	if st.empty() && st.Settings == nil {
		if err := os.Remove(s.path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sysproxy: remove state: %w", err)
		}
		return nil
	}
	st.Applied = nil
	if s := st.Settings; s != nil {
		st.Applied = &applied{PACURL: s.PACURL, ProxyAddr: s.ProxyAddr, Bypass: s.Bypass}
	}
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return fmt.Errorf("sysproxy: encode state: %w", err)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("sysproxy: create state directory: %w", err)
	}
	if err := atomicfile.Write(s.path(), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("sysproxy: write state: %w", err)
	}
	return nil
}
