package sysproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// On Linux "every user session" means:
//
//   - GNOME and other GSettings programs: every session that reads the
//     default dconf profile, through one locked system database (see
//     gnome_linux.go), whoever logs in and whenever;
//   - KDE: ~/.config/kioslaverc of every account that has a home under
//     /home that exists (Options.Users replaces the list); an account whose
//     home appears later is picked up by the next Check, which Keep runs
//     every minute;
//   - command-line programs: every PAM session (/etc/environment, read by
//     pam_env) and every login shell (/etc/profile.d/vigie-proxy.sh), with
//     Settings.ProxyAddr, since environment variables cannot express a PAC.
//
// Not covered: accounts whose home is elsewhere (system accounts, /root),
// a KDE user with a custom XDG_CONFIG_HOME, programs with their own proxy
// settings (Firefox with a non-system setting), and shells that are not
// login shells and do not go through PAM (they inherit their parent's
// environment).

func init() {
	newPlatform = func(o *Options) platform { return &linuxPlatform{o: o} }
}

type linuxPlatform struct {
	o *Options
}

const (
	kioslavercPath  = ".config/kioslaverc"
	environmentPath = "etc/environment"
	profileDPath    = "etc/profile.d/vigie-proxy.sh"
)

func (p *linuxPlatform) targets(ctx context.Context, s Settings) ([]target, error) {
	users, err := p.users(ctx)
	if err != nil {
		return nil, fmt.Errorf("sysproxy: list users: %w", err)
	}
	var ts []target
	if dirExists(p.native(dconfDir)) {
		ts = append(ts, newGnomeTarget(p.o, s))
	}
	seen := map[string]bool{}
	for _, u := range users {
		home := cleanHome(u.Home)
		if home == "" || home == "/" || seen[home] || !dirExists(p.native(home)) {
			continue
		}
		seen[home] = true
		pac := s.PACURL
		ts = append(ts, &fileTarget{
			name: "kde:" + u.Name,
			root: p.o.Root,
			spec: fileSpec{base: home, path: kioslavercPath, edit: editKioslaverc, mode: 0o600, dirMode: 0o700, uid: u.UID, gid: u.GID},
			want: func(cur []byte, _ bool) ([]byte, bool) { return kioslavercSet(cur, pac), true },
		})
	}
	block, script := envBlock(s), profileScript(s)
	ts = append(ts,
		&fileTarget{
			name: "env:/" + environmentPath,
			root: p.o.Root,
			spec: fileSpec{base: "/", path: environmentPath, edit: editEnvironment, mode: 0o644, dirMode: 0o755, uid: -1, gid: -1},
			want: func(cur []byte, exists bool) ([]byte, bool) { return environmentSet(cur, exists, block) },
		},
		&fileTarget{
			name: "env:/" + profileDPath,
			root: p.o.Root,
			spec: fileSpec{base: "/", path: profileDPath, edit: editWhole, mode: 0o644, dirMode: 0o755, uid: -1, gid: -1},
			want: func([]byte, bool) ([]byte, bool) { return script, script != nil },
		},
	)
	return ts, nil
}

func (p *linuxPlatform) restore(ctx context.Context, key string, raw json.RawMessage) error {
	if key == "gnome" {
		return restoreGnome(ctx, p.o, raw)
	}
	var rec fileRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return fmt.Errorf("sysproxy: restore %s: bad record: %w", key, err)
	}
	return restoreFile(p.o.Root, key, rec)
}

// notify has nothing to do on Linux: the gnome target signals dconf
// clients itself, KDE programs read kioslaverc when they start or are told
// by KDE's settings module, and environment variables reach new sessions.
func (p *linuxPlatform) notify(context.Context) {}

func (p *linuxPlatform) native(name string) string {
	return filepath.Join(p.o.Root, filepath.FromSlash(name))
}

func (p *linuxPlatform) users(ctx context.Context) ([]User, error) {
	if p.o.Users != nil {
		return p.o.Users(ctx)
	}
	b, err := os.ReadFile(p.native("etc/passwd"))
	if err != nil {
		return nil, err
	}
	return passwdUsers(b), nil
}

// passwdUsers returns the accounts of an /etc/passwd whose home is under
// /home, in file order.
func passwdUsers(b []byte) []User {
	var users []User
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || f[0] == "" || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], "+") || strings.HasPrefix(f[0], "-") {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		home := cleanHome(f[5])
		if err1 != nil || err2 != nil || uid < 0 || gid < 0 || !strings.HasPrefix(home, "/home/") {
			continue
		}
		users = append(users, User{Name: f[0], Home: home, UID: uid, GID: gid})
	}
	return users
}
