package sysproxy

import (
	"bytes"
	"slices"
	"strings"
)

// Text edits of the Linux files. Each set function returns the content a
// file should have (and whether it should exist) given its current
// content, and set(set(x)) == set(x): our settings are "in place" exactly
// when set changes nothing. Each undo function takes out what set put in,
// for when the file changed after we wrote it and the previous bytes can no
// longer simply be put back.

// splitLines splits b into lines that keep their "\n"; concatenating them
// gives b back.
func splitLines(b []byte) []string {
	var ls []string
	s := string(b)
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			ls = append(ls, s)
			break
		}
		ls = append(ls, s[:i+1])
		s = s[i+1:]
	}
	return ls
}

func joinLines(ls []string) []byte { return []byte(strings.Join(ls, "")) }

// endLine makes the last line end with a newline, so that a line can be
// appended after it.
func endLine(ls []string) []string {
	if n := len(ls); n > 0 && !strings.HasSuffix(ls[n-1], "\n") {
		ls[n-1] += "\n"
	}
	return ls
}

// unendLine takes off the newline that endLine added: when prev did not
// end with one and out ends with prev's last line plus a newline.
func unendLine(out, prev []byte) []byte {
	if len(prev) == 0 || prev[len(prev)-1] == '\n' || len(out) == 0 || out[len(out)-1] != '\n' {
		return out
	}
	last := prev[bytes.LastIndexByte(prev, '\n')+1:]
	if bytes.HasSuffix(out[:len(out)-1], last) && (len(out)-1 == len(last) || out[len(out)-2-len(last)] == '\n') {
		return out[:len(out)-1]
	}
	return out
}

func blank(line string) bool { return strings.TrimSpace(line) == "" }

// --- KDE: ~/.config/kioslaverc ---

const (
	kdeGroup     = "Proxy Settings"
	kdeScriptKey = "Proxy Config Script"
	kdeTypeKey   = "ProxyType"
	// kdeTypePAC is KIO's ProxyType for "use proxy auto configuration URL".
	kdeTypePAC = "2"
)

var kdeKeys = []string{kdeScriptKey, kdeTypeKey}

// iniGroup returns the group named by a header line: "[name]", or
// "[name][$i]" (KConfig's immutable marker).
func iniGroup(line string) (string, bool) {
	t := strings.TrimSpace(line)
	if !strings.HasPrefix(t, "[") {
		return "", false
	}
	end := strings.IndexByte(t, ']')
	if end < 0 {
		return "", false
	}
	if rest := t[end+1:]; rest != "" && !strings.HasPrefix(rest, "[$") {
		return t, true // a nested group: not one of ours
	}
	return t[1:end], true
}

// iniKey returns the key of a "key=value" line, without KConfig's locale
// or flag suffix ("ProxyType[$i]=2" is ProxyType).
func iniKey(line string) string {
	t := strings.TrimSpace(line)
	if t == "" || t[0] == '#' || t[0] == '[' {
		return ""
	}
	eq := strings.IndexByte(t, '=')
	if eq < 0 {
		return ""
	}
	k := strings.TrimSpace(t[:eq])
	if i := strings.IndexByte(k, '['); i > 0 {
		k = k[:i]
	}
	return k
}

// iniGroupRange finds the first group called name: its header line, and
// the index after its last line.
func iniGroupRange(ls []string, name string) (hdr, end int, ok bool) {
	hdr = -1
	for i, l := range ls {
		g, isHdr := iniGroup(l)
		if !isHdr {
			continue
		}
		if hdr >= 0 {
			return hdr, i, true
		}
		if g == name {
			hdr = i
		}
	}
	if hdr < 0 {
		return 0, 0, false
	}
	return hdr, len(ls), true
}

// iniSetKey makes line the only line for key in the group (hdr, end),
// replacing the first one in place or adding it after the group's last
// non-blank line. It returns the new lines and the group's new end.
func iniSetKey(ls []string, hdr, end int, key, line string) ([]string, int) {
	found := -1
	for i := hdr + 1; i < end; i++ {
		if iniKey(ls[i]) != key {
			continue
		}
		if found < 0 {
			found = i
			continue
		}
		ls = slices.Delete(ls, i, i+1)
		i--
		end--
	}
	if found >= 0 {
		ls[found] = line
		return ls, end
	}
	pos := end
	for pos > hdr+1 && blank(ls[pos-1]) {
		pos--
	}
	if !strings.HasSuffix(ls[pos-1], "\n") {
		ls[pos-1] += "\n"
	}
	return slices.Insert(ls, pos, line), end + 1
}

// iniDeleteKey removes every line for key in the group (hdr, end).
func iniDeleteKey(ls []string, hdr, end int, key string) ([]string, int) {
	for i := hdr + 1; i < end; i++ {
		if iniKey(ls[i]) == key {
			ls = slices.Delete(ls, i, i+1)
			i--
			end--
		}
	}
	return ls, end
}

func kdeLines(pac string) map[string]string {
	return map[string]string{
		kdeScriptKey: kdeScriptKey + "=" + pac + "\n",
		kdeTypeKey:   kdeTypeKey + "=" + kdeTypePAC + "\n",
	}
}

// kioslavercSet sets [Proxy Settings] ProxyType=2 and Proxy Config Script,
// and leaves every other line as it was.
func kioslavercSet(cur []byte, pac string) []byte {
	ls := splitLines(cur)
	want := kdeLines(pac)
	hdr, end, ok := iniGroupRange(ls, kdeGroup)
	if !ok {
		ls = endLine(ls)
		if n := len(ls); n > 0 && !blank(ls[n-1]) {
			ls = append(ls, "\n")
		}
		ls = append(ls, "["+kdeGroup+"]\n")
		for _, k := range kdeKeys {
			ls = append(ls, want[k])
		}
		return joinLines(ls)
	}
	for _, k := range kdeKeys {
		ls, end = iniSetKey(ls, hdr, end, k, want[k])
	}
	return joinLines(ls)
}

// kioslavercUndo puts back the previous lines for our keys (or removes
// them, and the group if we added it), leaving what others changed since.
func kioslavercUndo(cur, prev []byte, prevExisted bool) ([]byte, bool) {
	prevLine := map[string]string{}
	pls := splitLines(prev)
	phdr, pend, hadGroup := iniGroupRange(pls, kdeGroup)
	if hadGroup {
		for i := phdr + 1; i < pend; i++ {
			if k := iniKey(pls[i]); slices.Contains(kdeKeys, k) && prevLine[k] == "" {
				prevLine[k] = pls[i]
			}
		}
	}
	ls := splitLines(cur)
	hdr, end, ok := iniGroupRange(ls, kdeGroup)
	if !ok {
		return cur, true
	}
	for _, k := range kdeKeys {
		if l := prevLine[k]; l != "" {
			if !strings.HasSuffix(l, "\n") && end < len(ls) {
				l += "\n"
			}
			ls, end = iniSetKey(ls, hdr, end, k, l)
		} else {
			ls, end = iniDeleteKey(ls, hdr, end, k)
		}
	}
	if !hadGroup && !slices.ContainsFunc(ls[hdr+1:end], func(l string) bool { return !blank(l) }) {
		last := end == len(ls)
		ls = slices.Delete(ls, hdr, end)
		sepAdded := len(pls) > 0 && !blank(pls[len(pls)-1])
		if last && sepAdded && hdr > 0 && blank(ls[hdr-1]) {
			ls = ls[:hdr-1] // the blank line set put before the group
		}
	}
	out := unendLine(joinLines(ls), prev)
	if !prevExisted && strings.TrimSpace(string(out)) == "" {
		return nil, false
	}
	return out, true
}

// --- /etc/environment ---

const (
	envBegin = "# BEGIN vigie-proxy"
	envEnd   = "# END vigie-proxy"
)

// envNames are the variables we set, lower case first: curl and wget read
// the lower-case ones, many other programs the upper-case ones.
var envNames = []string{"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}

// proxyURL is ProxyAddr as the URL that environment variables and
// libcurl expect.
func (s Settings) proxyURL() string {
	return "http://" + s.ProxyAddr
}

// envValues returns the variables for s in envNames order, or nil when s
// has no ProxyAddr (environment variables cannot express a PAC).
func envValues(s Settings) [][2]string {
	if s.ProxyAddr == "" {
		return nil
	}
	p, np := s.proxyURL(), strings.Join(s.noProxy(), ",")
	return [][2]string{
		{"http_proxy", p}, {"https_proxy", p}, {"no_proxy", np},
		{"HTTP_PROXY", p}, {"HTTPS_PROXY", p}, {"NO_PROXY", np},
	}
}

// envBlock is our block in /etc/environment (pam_env syntax), marked so
// that undo finds exactly it; nil when there is nothing to set.
func envBlock(s Settings) []string {
	vals := envValues(s)
	if vals == nil {
		return nil
	}
	b := []string{envBegin + ": managed by the Vigie agent; edits between these lines are undone, and the agent removes them when uninstalled\n"}
	for _, v := range vals {
		b = append(b, v[0]+"="+v[1]+"\n")
	}
	return append(b, envEnd+"\n")
}

// envKey is the variable a KEY=VALUE line (optionally "export KEY=…")
// assigns.
func envKey(line string) string {
	t := strings.TrimSpace(line)
	if t == "" || t[0] == '#' {
		return ""
	}
	t = strings.TrimPrefix(t, "export ")
	eq := strings.IndexByte(t, '=')
	if eq < 0 {
		return ""
	}
	return strings.TrimSpace(t[:eq])
}

// envFind finds our block. Without its end marker (someone deleted it), the
// block is the begin marker and the assignments of our variables right
// after it, and nothing further.
func envFind(ls []string) (begin, end int, ok bool) {
	begin = slices.IndexFunc(ls, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), envBegin) })
	if begin < 0 {
		return 0, 0, false
	}
	end = begin
	for i := begin + 1; i < len(ls); i++ {
		if strings.TrimSpace(ls[i]) == envEnd {
			return begin, i, true
		}
		if !slices.Contains(envNames, envKey(ls[i])) {
			break
		}
		end = i
	}
	return begin, end, true
}

// environmentSet puts block (or no block, when nil) in /etc/environment.
// The block stays where it is unless a later line assigns one of our
// variables (pam_env: the last assignment wins); then it moves to the end.
// Every other line is left as it is.
func environmentSet(cur []byte, exists bool, block []string) ([]byte, bool) {
	ls := splitLines(cur)
	b, e, found := envFind(ls)
	if block == nil {
		if !found {
			return cur, exists
		}
		return joinLines(slices.Delete(ls, b, e+1)), true
	}
	if found {
		overridden := slices.ContainsFunc(ls[e+1:], func(l string) bool { return slices.Contains(envNames, envKey(l)) })
		if !overridden && slices.Equal(ls[b:e+1], block) {
			return cur, true
		}
		ls = slices.Delete(ls, b, e+1)
		if !overridden {
			return joinLines(slices.Insert(ls, b, block...)), true
		}
	}
	ls = append(endLine(ls), block...)
	return joinLines(ls), true
}

// environmentUndo removes our block, and the newline set added before it
// when the previous file did not end with one.
func environmentUndo(cur, prev []byte, prevExisted bool) ([]byte, bool) {
	ls := splitLines(cur)
	b, e, found := envFind(ls)
	if !found {
		return cur, true
	}
	out := unendLine(joinLines(slices.Delete(ls, b, e+1)), prev)
	if !prevExisted && strings.TrimSpace(string(out)) == "" {
		return nil, false
	}
	return out, true
}

// profileScript is /etc/profile.d/vigie-proxy.sh for s, or nil when s has
// no ProxyAddr.
func profileScript(s Settings) []byte {
	vals := envValues(s)
	if vals == nil {
		return nil
	}
	var b strings.Builder
	b.WriteString("# Managed by the Vigie agent: the proxy for command-line programs in login\n")
	b.WriteString("# shells. Edits are undone; the agent removes this file when uninstalled.\n")
	names := make([]string, 0, len(vals))
	for _, v := range vals {
		// Settings.validate keeps quotes out of the values.
		b.WriteString(v[0] + "='" + v[1] + "'\n")
		names = append(names, v[0])
	}
	b.WriteString("export " + strings.Join(names, " ") + "\n")
	return []byte(b.String())
}

// --- GNOME: /etc/dconf ---

const (
	// dconfDB is our system database: /etc/dconf/db/vigie, compiled from
	// /etc/dconf/db/vigie.d.
	dconfDB          = "vigie"
	dconfProfileLine = "system-db:" + dconfDB
	dconfNewProfile  = "# Written by the Vigie agent so that every session reads its proxy\n" +
		"# settings; the agent removes this file when uninstalled.\nuser-db:user\n" + dconfProfileLine + "\n"
)

// dconfProfileSet adds our database to the dconf profile "user", which
// every session without DCONF_PROFILE reads. Listed last, its locks beat
// every database above it, the user's own included.
func dconfProfileSet(cur []byte, exists bool) []byte {
	if !exists {
		return []byte(dconfNewProfile)
	}
	ls := splitLines(cur)
	if slices.ContainsFunc(ls, isDconfProfileLine) {
		return cur
	}
	return joinLines(append(endLine(ls), dconfProfileLine+"\n"))
}

func isDconfProfileLine(l string) bool { return strings.TrimSpace(l) == dconfProfileLine }

func dconfProfileUndo(cur, prev []byte, prevExisted bool) ([]byte, bool) {
	ls := slices.DeleteFunc(splitLines(cur), isDconfProfileLine)
	out := joinLines(ls)
	if !prevExisted && string(out) == strings.TrimSuffix(dconfNewProfile, dconfProfileLine+"\n") {
		return nil, false
	}
	return out, true
}

// gnomeKeyfile sets org.gnome.system.proxy: mode 'auto' and the PAC URL
// (validate keeps quotes out of it, so the GVariant literal is safe).
func gnomeKeyfile(pac string) []byte {
	return []byte("# Managed by the Vigie agent: GNOME's proxy settings point at the agent.\n" +
		"[system/proxy]\nmode='auto'\nautoconfig-url='" + pac + "'\n")
}

// gnomeLocks locks both keys, so that neither a user's own setting nor the
// Settings panel can turn the proxy off while the agent manages it.
func gnomeLocks() []byte {
	return []byte("# Managed by the Vigie agent.\n/system/proxy/mode\n/system/proxy/autoconfig-url\n")
}
