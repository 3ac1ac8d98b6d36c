package sysproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// maxFileSize bounds what we read from a file we edit: the files we touch
// are a few lines long, and a huge one is not what we think it is.
const maxFileSize = 1 << 20

// editKind says how a file is edited, so that restore can undo the edit
// from the record alone.
type editKind string

const (
	editWhole        editKind = "whole" // the whole file is ours
	editKioslaverc   editKind = "kioslaverc"
	editEnvironment  editKind = "environment"
	editDconfProfile editKind = "dconf-profile"
)

// fileSpec says where a file is and who owns what we create.
type fileSpec struct {
	// base is the directory path is relative to, under Options.Root: "/"
	// for system files, a home directory for a user's. Every access goes
	// through an os.Root at base, so a symbolic link in a user's home
	// cannot send a write outside it.
	base, path string
	edit       editKind
	// mode and dirMode are for a file or directory we create; an existing
	// file keeps its mode and owner.
	mode, dirMode os.FileMode
	// uid and gid own what we create; -1 leaves the creator (root).
	uid, gid int
}

// fileRecord is a file target's record in the state file.
type fileRecord struct {
	Base string   `json:"base"`
	Path string   `json:"path"`
	Edit editKind `json:"edit"`
	UID  int      `json:"uid"`
	GID  int      `json:"gid"`
	// Existed, Prev, Mode, PrevUID and PrevGID are the file before the
	// first Apply.
	Existed bool   `json:"existed"`
	Prev    []byte `json:"prev,omitempty"`
	Mode    uint32 `json:"mode,omitempty"`
	PrevUID int    `json:"prev_uid,omitempty"`
	PrevGID int    `json:"prev_gid,omitempty"`
	// NewDirs are the directories that did not exist before, outermost
	// first: restore removes them if they are empty.
	NewDirs []string `json:"new_dirs,omitempty"`
	// Applied, WroteExists and Wrote are what the last apply left. When
	// the file is still exactly that, restore puts Prev back byte for
	// byte; otherwise it undoes only our edit.
	Applied     bool   `json:"applied,omitempty"`
	WroteExists bool   `json:"wrote_exists,omitempty"`
	Wrote       []byte `json:"wrote,omitempty"`
}

// fileTarget is a file whose content we edit.
type fileTarget struct {
	name string
	root string // Options.Root
	spec fileSpec
	// want returns what the file should hold given what it holds, and
	// whether it should exist.
	want func(cur []byte, exists bool) ([]byte, bool)
}

func (t *fileTarget) key() string { return t.name }

func (t *fileTarget) capture(ctx context.Context) (json.RawMessage, error) {
	rec, err := t.captureRecord()
	if err != nil {
		return nil, err
	}
	return json.Marshal(rec)
}

func (t *fileTarget) captureRecord() (fileRecord, error) {
	rec := fileRecord{Base: t.spec.base, Path: t.spec.path, Edit: t.spec.edit, UID: t.spec.uid, GID: t.spec.gid}
	r, err := openBase(t.root, t.spec.base)
	if err != nil {
		return rec, t.errorf("%w", err)
	}
	defer r.Close()
	f, err := readFile(r, t.spec.path)
	if err != nil {
		return rec, t.errorf("%w", err)
	}
	if f.exists {
		rec.Existed, rec.Prev, rec.Mode, rec.PrevUID, rec.PrevGID = true, f.data, uint32(f.mode), f.uid, f.gid
	}
	rec.NewDirs, err = missingDirs(r, path.Dir(t.spec.path))
	if err != nil {
		return rec, t.errorf("%w", err)
	}
	return rec, nil
}

func (t *fileTarget) inPlace(ctx context.Context, _ json.RawMessage) (bool, error) {
	r, err := openBase(t.root, t.spec.base)
	if err != nil {
		return false, t.errorf("%w", err)
	}
	defer r.Close()
	f, err := readFile(r, t.spec.path)
	if err != nil {
		return false, t.errorf("%w", err)
	}
	data, keep := t.want(f.data, f.exists)
	return keep == f.exists && bytes.Equal(data, f.data), nil
}

func (t *fileTarget) apply(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var rec fileRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, t.errorf("bad record: %w", err)
	}
	err := t.applyRecord(&rec)
	out, merr := json.Marshal(rec)
	if merr != nil {
		return nil, merr
	}
	return out, err
}

func (t *fileTarget) applyRecord(rec *fileRecord) error {
	r, err := openBase(t.root, t.spec.base)
	if err != nil {
		return t.errorf("%w", err)
	}
	defer r.Close()
	f, err := readFile(r, t.spec.path)
	if err != nil {
		return t.errorf("%w", err)
	}
	data, keep := t.want(f.data, f.exists)
	if keep == f.exists && bytes.Equal(data, f.data) {
		return nil
	}
	switch {
	case !keep:
		err = removeFile(r, t.spec.path)
	case f.exists:
		err = writeFile(r, t.spec.path, data, f.mode, f.uid, f.gid)
	default:
		if _, err = makeDirs(r, path.Dir(t.spec.path), t.spec.dirMode, t.spec.uid, t.spec.gid); err == nil {
			err = writeFile(r, t.spec.path, data, t.spec.mode, t.spec.uid, t.spec.gid)
		}
	}
	if err != nil {
		return t.errorf("%w", err)
	}
	rec.Applied, rec.WroteExists, rec.Wrote = true, keep, data
	return nil
}

func (t *fileTarget) errorf(format string, args ...any) error {
	return fmt.Errorf("sysproxy: %s: %s: "+format, append([]any{t.name, path.Join(t.spec.base, t.spec.path)}, args...)...)
}

// restoreFile puts back what rec says was there: byte for byte when the
// file is still what we wrote, else by undoing only our edit.
func restoreFile(root, name string, rec fileRecord) error {
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("sysproxy: restore %s: %s: "+format, append([]any{name, path.Join(rec.Base, rec.Path)}, args...)...)
	}
	r, err := openBase(root, rec.Base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the home went away with its user: nothing to put back
	}
	if err != nil {
		return errorf("%w", err)
	}
	defer r.Close()
	f, err := readFile(r, rec.Path)
	if err != nil {
		return errorf("%w", err)
	}

	data, keep := f.data, f.exists
	mode, uid, gid := f.mode, f.uid, f.gid
	untouched := rec.Applied && f.exists == rec.WroteExists && bytes.Equal(f.data, rec.Wrote)
	switch {
	case untouched || rec.Edit == editWhole:
		data, keep = rec.Prev, rec.Existed
		mode, uid, gid = os.FileMode(rec.Mode), rec.PrevUID, rec.PrevGID
	case !f.exists:
		// Someone removed the file we edited: nothing of ours is left.
	case rec.Edit == editKioslaverc:
		data, keep = kioslavercUndo(f.data, rec.Prev, rec.Existed)
	case rec.Edit == editEnvironment:
		data, keep = environmentUndo(f.data, rec.Prev, rec.Existed)
	case rec.Edit == editDconfProfile:
		data, keep = dconfProfileUndo(f.data, rec.Prev, rec.Existed)
	default:
		return errorf("unknown edit %q in the state file", rec.Edit)
	}
	if !f.exists && keep {
		// Put back a file that someone removed, as it was.
		mode, uid, gid = os.FileMode(rec.Mode), rec.PrevUID, rec.PrevGID
	}

	switch {
	case keep == f.exists && bytes.Equal(data, f.data):
	case !keep:
		err = removeFile(r, rec.Path)
	default:
		err = writeFile(r, rec.Path, data, mode, uid, gid)
	}
	if err != nil {
		return errorf("%w", err)
	}
	for i := len(rec.NewDirs) - 1; i >= 0; i-- {
		// Only if empty: the user may have put things there since.
		if err := r.Remove(rec.NewDirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) && !isNotEmpty(err) {
			return errorf("remove directory %s: %w", rec.NewDirs[i], err)
		}
	}
	return nil
}

func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}

func openBase(root, base string) (*os.Root, error) {
	return os.OpenRoot(filepath.Join(root, filepath.FromSlash(base)))
}

// fileState is a file as read: content, and mode and owner to keep.
type fileState struct {
	exists   bool
	data     []byte
	mode     os.FileMode
	uid, gid int
}

// readFile reads a regular file under r. It refuses symbolic links, hard
// links and other non-regular files rather than follow them: we replace
// files by renaming, which would turn a link into a file, and a link in a
// user's home may point at a file that is not theirs.
func readFile(r *os.Root, name string) (fileState, error) {
	fi, err := r.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return fileState{}, nil
	}
	if err != nil {
		return fileState{}, err
	}
	if !fi.Mode().IsRegular() {
		return fileState{}, fmt.Errorf("not a regular file (%s): leaving it alone", fi.Mode().Type())
	}
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fileState{}, err
	}
	defer f.Close()
	fi, err = f.Stat()
	if err != nil {
		return fileState{}, err
	}
	if fi.Size() > maxFileSize {
		return fileState{}, fmt.Errorf("larger than %d bytes: not editing it", maxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return fileState{}, err
	}
	st := fileState{exists: true, data: data, mode: fi.Mode().Perm(), uid: -1, gid: -1}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.uid, st.gid = int(sys.Uid), int(sys.Gid)
		if sys.Nlink > 1 {
			// A hard link to a file elsewhere (another user's, a system
			// file): what we would read and rewrite is not this file's.
			return fileState{}, errors.New("has several hard links: leaving it alone")
		}
	}
	return st, nil
}

// writeFile replaces name atomically: a temporary file beside it with the
// given mode and owner, synced, renamed over it.
func writeFile(r *os.Root, name string, data []byte, mode os.FileMode, uid, gid int) (err error) {
	tmp := path.Join(path.Dir(name), "."+path.Base(name)+".vigie-"+strconv.FormatUint(rand.Uint64(), 36))
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			r.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = chown(f, uid, gid); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil { // after chown, which may clear set-id bits
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = r.Rename(tmp, name); err != nil {
		return err
	}
	syncRootDir(r, path.Dir(name))
	return nil
}

// chown gives f to uid:gid unless it already has them, so that a test
// running as an ordinary user can keep its own files.
func chown(f *os.File, uid, gid int) error {
	if uid < 0 && gid < 0 {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok && (uid < 0 || int(sys.Uid) == uid) && (gid < 0 || int(sys.Gid) == gid) {
		return nil
	}
	return f.Chown(uid, gid)
}

func removeFile(r *os.Root, name string) error {
	if err := r.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	syncRootDir(r, path.Dir(name))
	return nil
}

func syncRootDir(r *os.Root, dir string) {
	if d, err := r.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// missingDirs lists the directories of dir (slash-separated, relative)
// that do not exist, outermost first.
func missingDirs(r *os.Root, dir string) ([]string, error) {
	var missing []string
	for d := dir; d != "." && d != "/" && d != ""; d = path.Dir(d) {
		_, err := r.Lstat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append([]string{d}, missing...)
	}
	return missing, nil
}

// makeDirs creates the missing directories of dir with mode and owner.
func makeDirs(r *os.Root, dir string, mode os.FileMode, uid, gid int) ([]string, error) {
	missing, err := missingDirs(r, dir)
	if err != nil {
		return nil, err
	}
	for _, d := range missing {
		if err := r.Mkdir(d, mode); err != nil {
			return nil, err
		}
		f, err := r.OpenFile(d, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY, 0)
		if err != nil {
			return nil, err
		}
		err = chown(f, uid, gid)
		if err == nil {
			err = f.Chmod(mode)
		}
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return missing, nil
}

// dirExists reports whether name is a directory.
func dirExists(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && fi.IsDir()
}

// cleanHome is home as a clean absolute slash path, or "" if it is not
// one.
func cleanHome(home string) string {
	if !strings.HasPrefix(home, "/") {
		return ""
	}
	return path.Clean(home)
}
