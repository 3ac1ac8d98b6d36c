package sysproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// On Windows "every user session" means every user whose registry hive is
// loaded in HKEY_USERS: users who are logged in (and accounts running
// services). Each gets WinINet's AutoConfigURL in
// HKEY_USERS\<SID>\Software\Microsoft\Windows\CurrentVersion\Internet
// Settings, which Edge, Chrome and every WinINet program read; running
// programs are told with InternetSetOption(SETTINGS_CHANGED, REFRESH). A
// user who logs in later is picked up by the next Check, which Keep runs
// every minute. WinHTTP (services, PowerShell, Windows Update) has one
// machine-wide default proxy that cannot be a PAC: it gets ProxyAddr and
// the bypass list, through WinHttpSetDefaultProxyConfiguration.
//
// Limits: a user who is not logged in when Restore runs keeps our
// AutoConfigURL until a later Restore finds their hive loaded (their record
// stays in the state file; Restore reports it); a policy
// (HKLM\Software\Policies\...\ProxySettingsPerUser) can make WinINet use
// machine settings instead; 32-bit WinHTTP programs read the WOW6432Node
// copy of WinHttpSettings, which is not managed here.

func init() {
	newPlatform = func(o *Options) platform { return &windowsPlatform{o: o} }
}

const (
	internetSettingsPath = `Software\Microsoft\Windows\CurrentVersion\Internet Settings`
	connectionsPath      = `SOFTWARE\Microsoft\Windows\CurrentVersion\Internet Settings\Connections`
	profileListPath      = `SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList`
)

type windowsPlatform struct {
	o *Options
}

func (p *windowsPlatform) targets(ctx context.Context, s Settings) ([]target, error) {
	users, err := p.users(ctx)
	if err != nil {
		return nil, fmt.Errorf("sysproxy: list users: %w", err)
	}
	var ts []target
	want := utf16Bytes(s.PACURL)
	for _, u := range users {
		if u.SID == "" {
			continue
		}
		ts = append(ts, &regTarget{
			name:  "wininet:" + u.SID,
			rec:   regRecord{Hive: "HKU", Path: u.SID + `\` + internetSettingsPath, Value: "AutoConfigURL"},
			typ:   registry.SZ,
			value: want,
		})
	}
	if s.ProxyAddr != "" {
		ts = append(ts, &winhttpTarget{proxy: s.ProxyAddr, bypass: winhttpBypass(s)})
	}
	return ts, nil
}

func (p *windowsPlatform) users(ctx context.Context) ([]User, error) {
	if p.o.Users != nil {
		return p.o.Users(ctx)
	}
	names, err := registry.USERS.ReadSubKeyNames(-1)
	if err != nil {
		return nil, err
	}
	var users []User
	for _, sid := range names {
		if !isUserSID(sid) {
			continue
		}
		u := User{SID: sid, Name: sid, UID: -1, GID: -1}
		if s, err := windows.StringToSid(sid); err == nil {
			if acct, dom, _, err := s.LookupAccount(""); err == nil {
				u.Name = dom + `\` + acct
			}
		}
		users = append(users, u)
	}
	return users, nil
}

// isUserSID accepts local and domain accounts (S-1-5-21-…) and Entra ID
// accounts (S-1-12-1-…), not their …_Classes hives nor service accounts.
func isUserSID(sid string) bool {
	return (strings.HasPrefix(sid, "S-1-5-21-") || strings.HasPrefix(sid, "S-1-12-1-")) && !strings.HasSuffix(sid, "_Classes")
}

func (p *windowsPlatform) restore(ctx context.Context, key string, raw json.RawMessage) error {
	var rec regRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return fmt.Errorf("sysproxy: restore %s: bad record: %w", key, err)
	}
	return restoreReg(key, rec)
}

var (
	modwininet             = windows.NewLazySystemDLL("wininet.dll")
	procInternetSetOptionW = modwininet.NewProc("InternetSetOptionW")

	modwinhttp                              = windows.NewLazySystemDLL("winhttp.dll")
	procWinHttpGetDefaultProxyConfiguration = modwinhttp.NewProc("WinHttpGetDefaultProxyConfiguration")
	procWinHttpSetDefaultProxyConfiguration = modwinhttp.NewProc("WinHttpSetDefaultProxyConfiguration")

	modkernel32    = windows.NewLazySystemDLL("kernel32.dll")
	procGlobalFree = modkernel32.NewProc("GlobalFree")

	modadvapi32        = windows.NewLazySystemDLL("advapi32.dll")
	procRegSetValueExW = modadvapi32.NewProc("RegSetValueExW")
)

const (
	internetOptionRefresh         = 37
	internetOptionSettingsChanged = 39

	// winhttpAccessTypeNamedProxy is WINHTTP_ACCESS_TYPE_NAMED_PROXY.
	winhttpAccessTypeNamedProxy = 3
)

// notify tells WinINet in running programs to re-read their settings.
func (p *windowsPlatform) notify(context.Context) {
	if procInternetSetOptionW.Find() != nil {
		return
	}
	procInternetSetOptionW.Call(0, internetOptionSettingsChanged, 0, 0)
	procInternetSetOptionW.Call(0, internetOptionRefresh, 0, 0)
}

// regRecord is a registry value's record: where it is, what it was, what
// we wrote.
type regRecord struct {
	Hive    string `json:"hive"` // "HKU" or "HKLM"
	Path    string `json:"path"`
	Value   string `json:"value"`
	Existed bool   `json:"existed"`
	Type    uint32 `json:"type,omitempty"`
	Data    []byte `json:"data,omitempty"`
	// Applied, WroteType and Wrote are what the last apply left: Restore
	// puts the previous value back only if the value is still ours.
	Applied   bool   `json:"applied,omitempty"`
	WroteType uint32 `json:"wrote_type,omitempty"`
	Wrote     []byte `json:"wrote,omitempty"`
}

func (r regRecord) hive() registry.Key {
	if r.Hive == "HKLM" {
		return registry.LOCAL_MACHINE
	}
	return registry.USERS
}

// regTarget is one registry value that we set to typ/value.
type regTarget struct {
	name  string
	rec   regRecord // where
	typ   uint32
	value []byte
}

func (t *regTarget) key() string { return t.name }

func (t *regTarget) capture(ctx context.Context) (json.RawMessage, error) {
	rec := t.rec
	typ, data, ok, err := readValue(rec)
	if err != nil && !errors.Is(err, registry.ErrNotExist) { // no key: no value
		return nil, fmt.Errorf("sysproxy: %s: read %s: %w", t.name, rec.Value, err)
	}
	rec.Existed, rec.Type, rec.Data = ok, typ, data
	return json.Marshal(rec)
}

func (t *regTarget) inPlace(ctx context.Context, _ json.RawMessage) (bool, error) {
	typ, data, ok, err := readValue(t.rec)
	if err != nil && !errors.Is(err, registry.ErrNotExist) {
		return false, fmt.Errorf("sysproxy: %s: read %s: %w", t.name, t.rec.Value, err)
	}
	return ok && typ == t.typ && bytes.Equal(data, t.value), nil
}

func (t *regTarget) apply(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var rec regRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("sysproxy: %s: bad record: %w", t.name, err)
	}
	if err := writeValue(rec, true, t.typ, t.value); err != nil {
		return nil, fmt.Errorf("sysproxy: %s: set %s: %w", t.name, rec.Value, err)
	}
	rec.Applied, rec.WroteType, rec.Wrote = true, t.typ, t.value
	return json.Marshal(rec)
}

// restoreReg puts the previous value back if the value is still what we
// wrote; if someone changed it since, their value stays.
func restoreReg(name string, rec regRecord) error {
	typ, data, ok, err := readValue(rec)
	if errors.Is(err, registry.ErrNotExist) {
		// The key is gone: for a user, their hive is not loaded (not
		// logged in) or the account was deleted.
		if rec.Hive == "HKU" && !profileExists(strings.SplitN(rec.Path, `\`, 2)[0]) {
			return nil
		}
		return fmt.Errorf("sysproxy: restore %s: %s is not loaded (user not logged in?); run Restore again once they are", name, rec.Path)
	}
	if err != nil {
		return fmt.Errorf("sysproxy: restore %s: read %s: %w", name, rec.Value, err)
	}
	if !rec.Applied || !ok || typ != rec.WroteType || !bytes.Equal(data, rec.Wrote) {
		return nil
	}
	if err := writeValue(rec, rec.Existed, rec.Type, rec.Data); err != nil {
		return fmt.Errorf("sysproxy: restore %s: %w", name, err)
	}
	return nil
}

func profileExists(sid string) bool {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, profileListPath+`\`+sid, registry.QUERY_VALUE)
	if err != nil {
		return false
	}
	k.Close()
	return true
}

// readValue returns a value's type and raw data; ok is false when the
// value does not exist. A missing key is registry.ErrNotExist.
func readValue(rec regRecord) (typ uint32, data []byte, ok bool, err error) {
	k, err := registry.OpenKey(rec.hive(), rec.Path, registry.QUERY_VALUE|registry.WOW64_64KEY)
	if err != nil {
		return 0, nil, false, err
	}
	defer k.Close()
	buf := make([]byte, 256)
	for {
		n, typ, err := k.GetValue(rec.Value, buf)
		switch {
		case errors.Is(err, registry.ErrNotExist):
			return 0, nil, false, nil
		case errors.Is(err, registry.ErrShortBuffer) && n > len(buf):
			buf = make([]byte, n)
			continue
		case err != nil:
			return 0, nil, false, err
		}
		return typ, buf[:n], true, nil
	}
}

// writeValue sets a value to typ/data exactly, or deletes it when !exists.
func writeValue(rec regRecord, exists bool, typ uint32, data []byte) error {
	k, _, err := registry.CreateKey(rec.hive(), rec.Path, registry.QUERY_VALUE|registry.SET_VALUE|registry.WOW64_64KEY)
	if err != nil {
		return err
	}
	defer k.Close()
	if !exists {
		if err := k.DeleteValue(rec.Value); err != nil && !errors.Is(err, registry.ErrNotExist) {
			return err
		}
		return nil
	}
	name, err := windows.UTF16PtrFromString(rec.Value)
	if err != nil {
		return err
	}
	if err := procRegSetValueExW.Find(); err != nil {
		return err
	}
	var p *byte
	if len(data) > 0 {
		p = &data[0]
	}
	r, _, _ := procRegSetValueExW.Call(uintptr(k), uintptr(unsafe.Pointer(name)), 0, uintptr(typ), uintptr(unsafe.Pointer(p)), uintptr(len(data)))
	if r != 0 {
		return syscall.Errno(r)
	}
	return nil
}

// utf16Bytes is s as REG_SZ data: UTF-16LE with its terminating NUL.
func utf16Bytes(s string) []byte {
	u, _ := windows.UTF16FromString(s)
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return b
}

// winhttpTarget is WinHTTP's machine-wide default proxy. It is set through
// WinHttpSetDefaultProxyConfiguration, which stores it in the
// WinHttpSettings registry value; restore writes that value's previous
// bytes back.
type winhttpTarget struct {
	proxy, bypass string
}

func (t *winhttpTarget) key() string { return "winhttp" }

var winhttpRecord = regRecord{Hive: "HKLM", Path: connectionsPath, Value: "WinHttpSettings"}

func (t *winhttpTarget) capture(ctx context.Context) (json.RawMessage, error) {
	rec := winhttpRecord
	typ, data, ok, err := readValue(rec)
	if err != nil && !errors.Is(err, registry.ErrNotExist) {
		return nil, fmt.Errorf("sysproxy: winhttp: read WinHttpSettings: %w", err)
	}
	rec.Existed, rec.Type, rec.Data = ok, typ, data
	return json.Marshal(rec)
}

// winhttpProxyInfo is WINHTTP_PROXY_INFO.
type winhttpProxyInfo struct {
	AccessType uint32
	Proxy      *uint16
	Bypass     *uint16
}

func (t *winhttpTarget) inPlace(ctx context.Context, _ json.RawMessage) (bool, error) {
	if err := procWinHttpGetDefaultProxyConfiguration.Find(); err != nil {
		return false, fmt.Errorf("sysproxy: winhttp: %w", err)
	}
	var info winhttpProxyInfo
	r, _, err := procWinHttpGetDefaultProxyConfiguration.Call(uintptr(unsafe.Pointer(&info)))
	if r == 0 {
		return false, fmt.Errorf("sysproxy: winhttp: WinHttpGetDefaultProxyConfiguration: %w", err)
	}
	proxy, bypass := windows.UTF16PtrToString(info.Proxy), windows.UTF16PtrToString(info.Bypass)
	for _, p := range []*uint16{info.Proxy, info.Bypass} {
		if p != nil {
			procGlobalFree.Call(uintptr(unsafe.Pointer(p)))
		}
	}
	return info.AccessType == winhttpAccessTypeNamedProxy && proxy == t.proxy && bypass == t.bypass, nil
}

func (t *winhttpTarget) apply(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var rec regRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("sysproxy: winhttp: bad record: %w", err)
	}
	if err := procWinHttpSetDefaultProxyConfiguration.Find(); err != nil {
		return nil, fmt.Errorf("sysproxy: winhttp: %w", err)
	}
	proxy, err := windows.UTF16PtrFromString(t.proxy)
	if err != nil {
		return nil, err
	}
	bypass, err := windows.UTF16PtrFromString(t.bypass)
	if err != nil {
		return nil, err
	}
	info := winhttpProxyInfo{AccessType: winhttpAccessTypeNamedProxy, Proxy: proxy, Bypass: bypass}
	r, _, err := procWinHttpSetDefaultProxyConfiguration.Call(uintptr(unsafe.Pointer(&info)))
	if r == 0 {
		return nil, fmt.Errorf("sysproxy: winhttp: WinHttpSetDefaultProxyConfiguration: %w", err)
	}
	// What it stored, so that Restore can tell whether it is still ours.
	typ, data, ok, err := readValue(rec)
	if err != nil || !ok {
		return nil, fmt.Errorf("sysproxy: winhttp: read back WinHttpSettings: %v", err)
	}
	rec.Applied, rec.WroteType, rec.Wrote = true, typ, data
	return json.Marshal(rec)
}
