package sync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"vigie/agent/internal/atomicfile"
	"vigie/platform/distrib/artifact"
)

// The cache holds, per kind, the envelope last applied, exactly as the
// platform sent it: <CacheDir>/<kind>.json. It is read back through the
// same checks as a fetch, so a file changed on disk is refused like a bad
// answer from the network.

func (s *Syncer) cachePath(kind string) string {
	return filepath.Join(s.o.CacheDir, kind+".json")
}

// loadCached puts the cached envelope of kind in snap, when there is one
// and it passes every check.
func (s *Syncer) loadCached(snap *Snapshot, kind string) error {
	data, err := os.ReadFile(s.cachePath(kind))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync: cache: %w", err)
	}
	env, err := artifact.Open(data, s.o.DistributionKey, kind, s.o.Tenant)
	if err != nil {
		return fmt.Errorf("sync: cache: %s: %w", s.cachePath(kind), err)
	}
	if err := s.install(snap, env); err != nil {
		return fmt.Errorf("sync: cache: %s: %w: %v", s.cachePath(kind), ErrInvalid, err)
	}
	st := snap.Status[kind]
	st.ETag = artifact.ETag(data)
	snap.Status[kind] = st
	return nil
}

func (s *Syncer) writeCache(kind string, body []byte) error {
	return atomicfile.Write(s.cachePath(kind), body, 0o600)
}
