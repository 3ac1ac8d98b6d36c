package sync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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
	return writeFileAtomic(s.cachePath(kind), body)
}

// writeFileAtomic replaces path with data, readable by the owner only: a
// temporary file in the same directory, synced, then renamed over path, so
// that a crash leaves the old file or the new one, never half of one.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	// After a successful rename there is nothing left to remove.
	defer os.Remove(tmp)
	// Exactly 0600, whatever the umask took away.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
