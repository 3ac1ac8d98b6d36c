// Package sysproxy points the operating system's proxy settings at the
// agent, keeps them pointed there, and puts back exactly what was there
// before.
//
// It is for the privileged agent service (flow 7 of DESIGN.md): Apply
// remembers each place's previous settings the first time it touches it
// (in Options.StateDir, written atomically before anything else changes),
// then sets the agent's PAC URL there; Keep re-applies when something else
// changes them; Restore, on uninstall, puts the remembered settings back
// and forgets them.
//
// It is not for evaluating PAC files (package pac), for the proxy itself
// (agent/proxy), nor for the user-mode agent, which must change nothing on
// the OS. It does not decide when to apply or restore: the service does.
//
// What it touches, per OS:
//
//   - Linux: every account in /etc/passwd whose home is under /home and
//     exists (KDE: ~/.config/kioslaverc), all sessions of every user at once
//     through a system dconf database with locks (GNOME and every GSettings
//     program), and the environment of login sessions (/etc/environment and
//     /etc/profile.d/vigie-proxy.sh) for command-line tools, which cannot use
//     a PAC and get Settings.ProxyAddr instead.
//   - Windows: WinINet's AutoConfigURL of every user whose registry hive is
//     loaded (logged in, or running a service), and WinHTTP's machine-wide
//     default proxy (Settings.ProxyAddr).
//   - macOS: the automatic proxy configuration URL of every network service;
//     these settings are machine-wide and so cover every user.
//
// Targets are named in Check's result and in logs: "gnome", "kde:alice",
// "env:/etc/environment", "wininet:S-1-5-21-…", "winhttp",
// "networkservice:Wi-Fi".
package sysproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Settings is what the OS should use.
type Settings struct {
	// PACURL is the agent's own PAC file, for example
	// "http://127.0.0.1:3129/proxy.pac". Required.
	PACURL string
	// ProxyAddr is the agent's listener as host:port, for the places that
	// cannot use a PAC (environment variables, WinHTTP). Empty leaves those
	// places alone.
	ProxyAddr string
	// Bypass lists hosts and domains that go direct where only ProxyAddr can
	// be used (no_proxy, WinHTTP bypass list): "example.com", ".corp",
	// "10.0.0.0/8". Loopback is always added.
	Bypass []string
}

// User is one account whose settings the Manager manages.
type User struct {
	// Name is the account name, used in target names and logs.
	Name string
	// Home is the home directory as the OS sees it ("/home/alice"); on
	// Linux it is read under Options.Root. Unused on Windows.
	Home string
	// UID and GID own the files created in Home (Linux).
	UID, GID int
	// SID is the account's security identifier (Windows).
	SID string
}

// Options configures a Manager. Only StateDir is required.
type Options struct {
	// StateDir holds the remembered previous settings (sysproxy.json, mode
	// 0600). It must survive restarts and upgrades: without it Restore
	// cannot put anything back. Required.
	StateDir string
	// Logger receives transitions only (applied, drifted, failing,
	// recovered). Default: discard.
	Logger *slog.Logger
	// Now is the clock for the timestamps in the state file. Default
	// time.Now.
	Now func() time.Time

	// Root is the file system root that Linux paths are read under, for
	// tests. Default "/".
	Root string
	// Users lists the accounts to manage (Linux, Windows). Default: on
	// Linux the /etc/passwd accounts under Root whose home is under /home
	// and exists; on Windows the users whose hive is loaded in HKEY_USERS.
	Users func(ctx context.Context) ([]User, error)
	// Run runs a program and returns its standard output: dconf and
	// dbus-send on Linux, networksetup on macOS. Default: os/exec, with a
	// one-minute limit per call.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ErrNotApplied is returned by Check when Apply has not been called since
// the last Restore, so there is nothing to compare with.
var ErrNotApplied = errors.New("sysproxy: settings were never applied")

// ErrUnsupported is returned on operating systems that this package does
// not know how to configure.
var ErrUnsupported = errors.New("sysproxy: this operating system is not supported")

// A target is one place where the OS keeps proxy settings: a file, a
// registry value, a network service. Each OS file provides its targets.
type target interface {
	// key names the target in the state file, Check's result and logs.
	key() string
	// capture records the settings in place now, for restore.
	capture(ctx context.Context) (json.RawMessage, error)
	// inPlace reports whether our settings are in place. rec is the
	// target's record, nil when it was never captured.
	inPlace(ctx context.Context, rec json.RawMessage) (bool, error)
	// apply puts our settings in place. rec is what capture returned the
	// first time; apply returns it updated (or unchanged).
	apply(ctx context.Context, rec json.RawMessage) (json.RawMessage, error)
}

// platform is what each OS provides.
type platform interface {
	// targets lists the places to set for s, in the order to apply them.
	targets(ctx context.Context, s Settings) ([]target, error)
	// restore puts back what the record, made by capture and apply of the
	// target named key, says was there.
	restore(ctx context.Context, key string, rec json.RawMessage) error
	// notify tells running programs that settings changed, after a batch.
	notify(ctx context.Context)
}

// newPlatform is set by the OS files; nil means unsupported.
var newPlatform func(o *Options) platform

// Manager applies, checks and restores the OS proxy settings. Its methods
// are safe for concurrent use; they run one at a time.
type Manager struct {
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	plat  platform
	mu    sync.Mutex // serialises every change to the OS and to the state file
	state *stateStore
}

// New returns a Manager. It touches nothing: the first Apply does.
func New(opts Options) *Manager {
	m := &Manager{opts: opts, log: opts.Logger, now: opts.Now}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.opts.Root == "" {
		m.opts.Root = "/"
	}
	if m.opts.Run == nil {
		m.opts.Run = runProgram
	}
	if newPlatform != nil {
		m.plat = newPlatform(&m.opts)
	}
	m.state = &stateStore{dir: opts.StateDir}
	return m
}

func (m *Manager) ready() error {
	if m.plat == nil {
		return ErrUnsupported
	}
	if m.opts.StateDir == "" {
		return errors.New("sysproxy: Options.StateDir is empty: set it to the agent's state directory")
	}
	return nil
}

// Apply points every target at s. The first time it meets a target it
// records that target's current settings in the state file, and only then
// changes it. Targets already set are not written again, so calling Apply
// repeatedly is cheap and changes nothing. A failing target does not stop
// the others; the errors are joined.
func (m *Manager) Apply(ctx context.Context, s Settings) error {
	if err := s.validate(); err != nil {
		return err
	}
	if err := m.ready(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.apply(ctx, s)
	return err
}

// apply is Apply under m.mu; it returns the keys of the targets it wrote.
func (m *Manager) apply(ctx context.Context, s Settings) (wrote []string, err error) {
	st, err := m.state.load()
	if err != nil {
		return nil, err
	}
	targets, err := m.plat.targets(ctx, s)
	if err != nil {
		return nil, err
	}
	var errs []error

	// Remember first, in one atomic write, then change.
	captured := false
	usable := targets[:0:0]
	for _, t := range targets {
		if _, ok := st.Targets[t.key()]; ok {
			usable = append(usable, t)
			continue
		}
		rec, err := t.capture(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st.Targets[t.key()] = savedTarget{Seq: st.nextSeq(), Saved: m.now().UTC(), Record: rec}
		usable = append(usable, t)
		captured = true
	}
	last := s
	last.Bypass = slices.Clone(s.Bypass)
	if captured || st.Settings == nil || !st.Settings.equal(s) {
		st.Settings = &last
		if err := m.state.save(st); err != nil {
			return nil, errors.Join(append(errs, err)...)
		}
	}

	dirty := false
	for _, t := range usable {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		saved := st.Targets[t.key()]
		ok, err := t.inPlace(ctx, saved.Record)
		if err == nil && ok {
			continue
		}
		rec, err := t.apply(ctx, saved.Record)
		if rec != nil && string(rec) != string(saved.Record) {
			saved.Record = rec
			st.Targets[t.key()] = saved
			dirty = true
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		wrote = append(wrote, t.key())
	}
	if dirty {
		if err := m.state.save(st); err != nil {
			errs = append(errs, err)
		}
	}
	if len(wrote) > 0 {
		m.plat.notify(ctx)
	}
	return wrote, errors.Join(errs...)
}

// Restore puts back, for every target Apply changed, what was there before
// the first Apply, then forgets it. A target that cannot be restored now
// (a Windows user who is not logged in, a failing write) stays remembered
// for the next call, and its error is returned. With nothing remembered,
// Restore does nothing, so calling it twice is safe. Stop Keep first, or
// its next round applies the settings again.
func (m *Manager) Restore(ctx context.Context) error {
	if err := m.ready(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.state.load()
	if err != nil {
		return err
	}
	if st.empty() && st.Settings == nil {
		return nil
	}
	var errs []error
	keys := st.keys()
	slices.Reverse(keys) // undo in the reverse order of Apply
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if err := m.plat.restore(ctx, k, st.Targets[k].Record); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(st.Targets, k)
	}
	if len(st.Targets) == 0 {
		st.Settings = nil
	}
	if err := m.state.save(st); err != nil {
		errs = append(errs, err)
	}
	m.plat.notify(ctx)
	if len(errs) == 0 && len(keys) > 0 {
		m.log.Info("sysproxy: previous proxy settings restored", "targets", len(keys))
	}
	return errors.Join(errs...)
}

// Check reports the targets that no longer have the settings of the last
// Apply (someone changed them, or a user appeared since), sorted. It
// changes nothing. A target that cannot be read is reported as drifted and
// its error is joined into err. It returns ErrNotApplied when there is no
// last Apply.
func (m *Manager) Check(ctx context.Context) (drifted []string, err error) {
	if err := m.ready(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.state.load()
	if err != nil {
		return nil, err
	}
	if st.Settings == nil {
		return nil, ErrNotApplied
	}
	return m.check(ctx, *st.Settings, st)
}

// check is Check for s under m.mu; st is the loaded state, or nil to load
// it.
func (m *Manager) check(ctx context.Context, s Settings, st *stateFile) ([]string, error) {
	if st == nil {
		var err error
		if st, err = m.state.load(); err != nil {
			return nil, err
		}
	}
	targets, err := m.plat.targets(ctx, s)
	if err != nil {
		return nil, err
	}
	var drifted []string
	var errs []error
	for _, t := range targets {
		ok, err := t.inPlace(ctx, st.Targets[t.key()].Record)
		if err != nil {
			errs = append(errs, err)
		}
		if !ok {
			drifted = append(drifted, t.key())
		}
	}
	slices.Sort(drifted)
	return drifted, errors.Join(errs...)
}

// Keep applies s, then every interval (default one minute when every <= 0)
// and whenever changed fires (a network change; nil means never) checks
// the targets and re-applies when something else changed them. It logs
// transitions only: applied, drifted, failing, recovered. It returns nil
// when ctx ends, and an error at once only if s or the Options are
// unusable (invalid settings, no StateDir, unsupported OS). It does not
// restore on return: stopping the service keeps the settings; uninstalling
// calls Restore.
func (m *Manager) Keep(ctx context.Context, s Settings, every time.Duration, changed <-chan struct{}) error {
	if err := s.validate(); err != nil {
		return err
	}
	if err := m.ready(); err != nil {
		return err
	}
	if every <= 0 {
		every = time.Minute
	}
	k := keeper{log: m.log}
	m.mu.Lock()
	wrote, err := m.apply(ctx, s)
	m.mu.Unlock()
	k.applied(wrote, err)

	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case _, ok := <-changed:
			if !ok {
				changed = nil // closed: only the ticker from now on
				continue
			}
		}
		m.mu.Lock()
		drifted, cerr := m.check(ctx, s, nil)
		if len(drifted) == 0 && cerr == nil {
			m.mu.Unlock()
			k.inPlace()
			continue
		}
		k.drifted(drifted)
		wrote, err := m.apply(ctx, s)
		m.mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		k.applied(wrote, err)
	}
}

// keeper turns Keep's rounds into log lines, one per transition.
type keeper struct {
	log       *slog.Logger
	started   bool
	lastErr   string   // non-empty while failing
	lastDrift []string // drift seen and not yet fixed
}

func (k *keeper) drifted(keys []string) {
	if slices.Equal(keys, k.lastDrift) {
		return // same drift as last round, still unfixed: already logged
	}
	k.lastDrift = keys
	k.log.Warn("sysproxy: proxy settings were changed by something else; re-applying", "targets", keys)
}

func (k *keeper) applied(wrote []string, err error) {
	switch {
	case err != nil:
		if msg := err.Error(); msg != k.lastErr {
			k.lastErr = msg
			k.log.Error("sysproxy: could not apply the proxy settings; retrying every round", "err", err)
		}
	case !k.started:
		k.log.Info("sysproxy: proxy settings applied", "written", wrote)
	default:
		k.inPlace()
	}
	k.started = true
}

func (k *keeper) inPlace() {
	k.lastDrift = nil
	if k.lastErr != "" {
		k.lastErr = ""
		k.log.Info("sysproxy: proxy settings in place again")
	}
}

// validate refuses settings that would be unsafe to write into shell
// scripts, key files, GVariant literals or the registry.
func (s Settings) validate() error {
	if s.PACURL == "" {
		return errors.New("sysproxy: invalid settings: PACURL is empty")
	}
	if !safeText(s.PACURL) {
		return fmt.Errorf("sysproxy: invalid settings: PAC URL %q has spaces, quotes or control characters", s.PACURL)
	}
	u, err := url.Parse(s.PACURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("sysproxy: invalid settings: PAC URL %q is not an absolute http or https URL", s.PACURL)
	}
	if s.ProxyAddr != "" {
		host, port, err := net.SplitHostPort(s.ProxyAddr)
		if err != nil || host == "" || !hostChars(host) {
			return fmt.Errorf("sysproxy: invalid settings: proxy address %q is not host:port", s.ProxyAddr)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("sysproxy: invalid settings: proxy address %q has no valid port", s.ProxyAddr)
		}
	}
	for _, b := range s.Bypass {
		if b == "" || !bypassChars(b) {
			return fmt.Errorf("sysproxy: invalid settings: bypass entry %q: use host names, .domains, *.domains, IPs or CIDRs", b)
		}
	}
	return nil
}

func (s Settings) equal(o Settings) bool {
	return s.PACURL == o.PACURL && s.ProxyAddr == o.ProxyAddr && slices.Equal(s.Bypass, o.Bypass)
}

// noProxy is Bypass plus loopback, deduplicated, in order.
func (s Settings) noProxy() []string {
	out := []string{"localhost", "127.0.0.1", "::1"}
	for _, b := range s.Bypass {
		if !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	return out
}

// safeText accepts printable ASCII without space, quotes, backslash, `$`
// or backquote: safe inside single quotes in sh, GVariant and key files.
func safeText(v string) bool {
	for _, c := range []byte(v) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("'\"\\`$", c) >= 0 {
			return false
		}
	}
	return true
}

func hostChars(v string) bool {
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:_%", c)) {
			return false
		}
	}
	return true
}

func bypassChars(v string) bool {
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:_*/[]<>", c)) {
			return false
		}
	}
	return true
}
