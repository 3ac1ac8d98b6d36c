package sysproxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
)

// GNOME, and every program that reads GSettings, gets its proxy from
// org.gnome.system.proxy, stored by dconf. A user's own database
// (~/.config/dconf/user) is a binary file that the user's dconf-service
// owns while they are logged in: writing it from outside races with that
// service, and `dconf write` needs the user's session bus. So we do what
// dconf offers administrators instead, which works with nobody logged in
// and covers every user at once, including users created later:
//
//   - a system database, /etc/dconf/db/vigie, compiled with `dconf compile`
//     from the key file /etc/dconf/db/vigie.d/00-vigie-proxy
//     (mode='auto', autoconfig-url=PAC) and the locks in
//     /etc/dconf/db/vigie.d/locks/vigie-proxy;
//   - the line "system-db:vigie" at the end of the dconf profile
//     /etc/dconf/profile/user (created, with user-db:user first, when
//     absent), written after the database exists.
//
// The locks make our values win over each user's own: the Settings panel
// shows the proxy as set and not changeable. A new database is swapped in
// by rename and the old one's header is zeroed, as `dconf update` does, so
// running sessions see the change on their next read; a signal on the
// system bus (dbus-send, best effort) tells them to re-read at once.
//
// Limits: a session started with DCONF_PROFILE set, or with
// $XDG_RUNTIME_DIR/dconf.profile, reads another profile; sandboxed apps
// (Flatpak) read the portal; the dconf command (dconf-cli) must be
// installed. Sessions that are running when the profile line is first
// added read the profile only at start: they see the settings from their
// next login.

const (
	dconfDir     = "etc/dconf"
	dconfProfile = "etc/dconf/profile/user"
	dconfDBFile  = "etc/dconf/db/" + dconfDB
	dconfKeyDir  = dconfDBFile + ".d"
	dconfKeyfile = dconfKeyDir + "/00-vigie-proxy"
	dconfLocks   = dconfKeyDir + "/locks/vigie-proxy"
)

// gnomeTarget is the profile line, the key file, the locks and the
// compiled database, applied and restored together.
type gnomeTarget struct {
	root                    string
	run                     func(ctx context.Context, name string, args ...string) ([]byte, error)
	profile, keyfile, locks *fileTarget
	// from identifies the key file and locks the database must be
	// compiled from.
	from string
}

// gnomeRecord is the gnome target's record in the state file.
type gnomeRecord struct {
	Keyfile fileRecord `json:"keyfile"`
	Locks   fileRecord `json:"locks"`
	Profile fileRecord `json:"profile"`
	// DB is the compiled database before the first Apply (its Wrote is
	// unused: DBSum and From say what we compiled).
	DB    fileRecord `json:"db"`
	DBSum string     `json:"db_sum,omitempty"`
	From  string     `json:"from,omitempty"`
}

func newGnomeTarget(o *Options, s Settings) *gnomeTarget {
	sys := func(name, p string, edit editKind, want func([]byte, bool) ([]byte, bool)) *fileTarget {
		return &fileTarget{name: name, root: o.Root, want: want,
			spec: fileSpec{base: "/", path: p, edit: edit, mode: 0o644, dirMode: 0o755, uid: -1, gid: -1}}
	}
	keyfile, locks := gnomeKeyfile(s.PACURL), gnomeLocks()
	sum := sha256.Sum256(append(append([]byte{}, keyfile...), locks...))
	return &gnomeTarget{
		root: o.Root,
		run:  o.Run,
		keyfile: sys("gnome", dconfKeyfile, editWhole, func([]byte, bool) ([]byte, bool) {
			return keyfile, true
		}),
		locks: sys("gnome", dconfLocks, editWhole, func([]byte, bool) ([]byte, bool) {
			return locks, true
		}),
		profile: sys("gnome", dconfProfile, editDconfProfile, func(cur []byte, exists bool) ([]byte, bool) {
			return dconfProfileSet(cur, exists), true
		}),
		from: hex.EncodeToString(sum[:]),
	}
}

func (t *gnomeTarget) key() string { return "gnome" }

func (t *gnomeTarget) capture(ctx context.Context) (json.RawMessage, error) {
	var rec gnomeRecord
	var err error
	for _, c := range []struct {
		f   *fileTarget
		rec *fileRecord
	}{{t.keyfile, &rec.Keyfile}, {t.locks, &rec.Locks}, {t.profile, &rec.Profile}} {
		if *c.rec, err = c.f.captureRecord(); err != nil {
			return nil, err
		}
	}
	db := fileTarget{name: "gnome", root: t.root, spec: fileSpec{base: "/", path: dconfDBFile, edit: editWhole, uid: -1, gid: -1}}
	if rec.DB, err = db.captureRecord(); err != nil {
		return nil, err
	}
	return json.Marshal(rec)
}

func (t *gnomeTarget) inPlace(ctx context.Context, raw json.RawMessage) (bool, error) {
	for _, f := range []*fileTarget{t.keyfile, t.locks, t.profile} {
		if ok, err := f.inPlace(ctx, nil); !ok || err != nil {
			return false, err
		}
	}
	var rec gnomeRecord
	if raw == nil || json.Unmarshal(raw, &rec) != nil || rec.From != t.from {
		return false, nil
	}
	sum, err := t.dbSum()
	return err == nil && sum == rec.DBSum, err
}

// dbSum is the SHA-256 of the compiled database, "" when it is missing.
func (t *gnomeTarget) dbSum() (string, error) {
	r, err := os.OpenRoot(t.root)
	if err != nil {
		return "", fmt.Errorf("sysproxy: gnome: %w", err)
	}
	defer r.Close()
	f, err := readFile(r, dconfDBFile)
	if err != nil || !f.exists {
		return "", err
	}
	sum := sha256.Sum256(f.data)
	return hex.EncodeToString(sum[:]), nil
}

func (t *gnomeTarget) apply(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var rec gnomeRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("sysproxy: gnome: bad record: %w", err)
	}
	err := t.applyRecord(ctx, &rec)
	out, merr := json.Marshal(rec)
	if merr != nil {
		return nil, merr
	}
	return out, err
}

func (t *gnomeTarget) applyRecord(ctx context.Context, rec *gnomeRecord) error {
	// Sources, then the database, then the profile line that makes
	// sessions read it: a profile naming a missing database makes every
	// GSettings program warn.
	if err := t.keyfile.applyRecord(&rec.Keyfile); err != nil {
		return err
	}
	if err := t.locks.applyRecord(&rec.Locks); err != nil {
		return err
	}
	sum, err := t.dbSum()
	if err != nil {
		return err
	}
	if sum == "" || sum != rec.DBSum || rec.From != t.from {
		if rec.DBSum, err = t.compile(ctx); err != nil {
			return err
		}
		rec.From = t.from
		rec.DB.Applied = true
	}
	return t.profile.applyRecord(&rec.Profile)
}

// compile builds the database from our key file directory beside the
// current one, swaps it in, and returns its SHA-256.
func (t *gnomeTarget) compile(ctx context.Context) (string, error) {
	r, err := os.OpenRoot(t.root)
	if err != nil {
		return "", fmt.Errorf("sysproxy: gnome: %w", err)
	}
	defer r.Close()
	tmp := path.Join(path.Dir(dconfDBFile), "."+dconfDB+".vigie-"+strconv.FormatUint(rand.Uint64(), 36))
	defer r.Remove(tmp)
	native := func(p string) string { return filepath.Join(t.root, filepath.FromSlash(p)) }
	if _, err := t.run(ctx, "dconf", "compile", native(tmp), native(dconfKeyDir)); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("sysproxy: gnome: the dconf command is missing: install dconf-cli: %w", err)
		}
		return "", fmt.Errorf("sysproxy: gnome: compile the dconf database: %w", err)
	}
	f, err := readFile(r, tmp)
	if err != nil || !f.exists {
		return "", fmt.Errorf("sysproxy: gnome: dconf compile wrote no database: %v", err)
	}
	if err := r.Chmod(tmp, 0o644); err != nil {
		return "", fmt.Errorf("sysproxy: gnome: %w", err)
	}
	if err := swapDB(r, tmp); err != nil {
		return "", err
	}
	t.notify(ctx)
	sum := sha256.Sum256(f.data)
	return hex.EncodeToString(sum[:]), nil
}

// swapDB renames tmp over the database (or removes the database when tmp
// is "") and then zeroes the old file's header: running dconf clients map
// the old file and check that header on every read, so they drop it and
// open the new one.
func swapDB(r *os.Root, tmp string) error {
	old, err := r.OpenFile(dconfDBFile, os.O_WRONLY, 0)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sysproxy: gnome: open the old dconf database: %w", err)
	}
	if tmp != "" {
		err = r.Rename(tmp, dconfDBFile)
	} else {
		err = removeFile(r, dconfDBFile)
	}
	if err != nil {
		if old != nil {
			old.Close()
		}
		return fmt.Errorf("sysproxy: gnome: replace the dconf database: %w", err)
	}
	if old != nil {
		_, err = old.WriteAt(make([]byte, 8), 0)
		if cerr := old.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sysproxy: gnome: invalidate the old dconf database: %w", err)
		}
	}
	syncRootDir(r, path.Dir(dconfDBFile))
	return nil
}

// notify tells running sessions to re-read our database, as `dconf
// update` does; best effort: without a system bus there is nobody to tell.
func (t *gnomeTarget) notify(ctx context.Context) {
	t.run(ctx, "dbus-send", "--system", "--type=signal", "/ca/desrt/dconf/Writer/"+dconfDB,
		"ca.desrt.dconf.Writer.WritabilityNotify", "string:/")
}

// restoreGnome undoes the gnome target: the profile line first, so that
// new sessions stop reading our database, then the database, then its
// sources.
func restoreGnome(ctx context.Context, o *Options, raw json.RawMessage) error {
	var rec gnomeRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return fmt.Errorf("sysproxy: restore gnome: bad record: %w", err)
	}
	if err := restoreFile(o.Root, "gnome", rec.Profile); err != nil {
		return err
	}
	if err := restoreDB(ctx, o, rec); err != nil {
		return err
	}
	if err := restoreFile(o.Root, "gnome", rec.Locks); err != nil {
		return err
	}
	return restoreFile(o.Root, "gnome", rec.Keyfile)
}

func restoreDB(ctx context.Context, o *Options, rec gnomeRecord) error {
	r, err := os.OpenRoot(o.Root)
	if err != nil {
		return fmt.Errorf("sysproxy: restore gnome: %w", err)
	}
	defer r.Close()
	f, err := readFile(r, dconfDBFile)
	if err != nil {
		return fmt.Errorf("sysproxy: restore gnome: %w", err)
	}
	if !f.exists && !rec.DB.Existed {
		return nil
	}
	tmp := ""
	if rec.DB.Existed {
		tmp = path.Join(path.Dir(dconfDBFile), "."+dconfDB+".vigie-"+strconv.FormatUint(rand.Uint64(), 36))
		if err := writeFile(r, tmp, rec.DB.Prev, os.FileMode(rec.DB.Mode), rec.DB.PrevUID, rec.DB.PrevGID); err != nil {
			return fmt.Errorf("sysproxy: restore gnome: %w", err)
		}
	}
	if err := swapDB(r, tmp); err != nil {
		return err
	}
	(&gnomeTarget{run: o.Run}).notify(ctx)
	return nil
}
