package artifact

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Release is the release manifest (kind release): the agent version the
// tenant's devices should run and where to get it for each platform. It is
// recorded and distributed; applying it (download, verification, swap) is
// the self-update's. The zero Release is the empty manifest: no release.
type Release struct {
	Version   string                 `json:"version"`
	Platforms map[string]ReleaseFile `json:"platforms"`
}

// ReleaseFile is one platform's binary.
type ReleaseFile struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"` // lower-case hex
}

// Platforms a release may name, as GOOS-GOARCH.
var releasePlatforms = []string{"darwin-amd64", "darwin-arm64", "linux-386", "linux-amd64", "linux-arm", "linux-arm64", "windows-386", "windows-amd64", "windows-arm64"}

var versionPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$`)

// ParseRelease reads a release manifest and validates it. strict refuses
// unknown fields (what an administrator sends); agents read leniently, as
// for ParseConfig.
func ParseRelease(data []byte, strict bool) (Release, error) {
	var r Release
	var platforms map[string]json.RawMessage
	if err := decodeFields(data, []field{{"version", &r.Version}, {"platforms", &platforms}}, strict); err != nil {
		return Release{}, fmt.Errorf("artifact: release: %w", err)
	}
	for name, raw := range platforms {
		var f ReleaseFile
		if err := decodeFields(raw, []field{{"url", &f.URL}, {"sha256", &f.SHA256}}, strict); err != nil {
			return Release{}, fmt.Errorf("artifact: release: platforms.%s: %w", name, err)
		}
		if r.Platforms == nil {
			r.Platforms = map[string]ReleaseFile{}
		}
		r.Platforms[name] = f
	}
	return r, r.Validate()
}

// Validate checks the manifest and names the first field that is wrong.
func (r Release) Validate() error {
	if r.Version == "" && len(r.Platforms) == 0 {
		return nil // the empty manifest
	}
	if !versionPattern.MatchString(r.Version) {
		return fmt.Errorf("artifact: release: version: want 1 to 64 letters, digits, '.', '+' or '-' (such as 1.4.2), got %q", r.Version)
	}
	if len(r.Platforms) == 0 {
		return fmt.Errorf("artifact: release: platforms: version %s names no platform", r.Version)
	}
	names := make([]string, 0, len(r.Platforms))
	for name := range r.Platforms {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f := r.Platforms[name]
		if !slices.Contains(releasePlatforms, name) {
			return fmt.Errorf("artifact: release: platforms: unknown platform %q; want one of %s", name, strings.Join(releasePlatforms, ", "))
		}
		if err := validURL(f.URL, false); err != nil {
			return fmt.Errorf("artifact: release: platforms.%s.url: %w", name, err)
		}
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 || strings.ToLower(f.SHA256) != f.SHA256 {
			return fmt.Errorf("artifact: release: platforms.%s.sha256: want 64 lower-case hex digits, got %q", name, f.SHA256)
		}
	}
	return nil
}

// Marshal encodes the manifest; equal manifests give equal bytes (keys in
// order, and the empty manifest as {"version":"","platforms":{}}).
func (r Release) Marshal() []byte {
	if r.Platforms == nil {
		r.Platforms = map[string]ReleaseFile{}
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic("artifact: marshal release: " + err.Error()) // plain fields: cannot fail
	}
	return b
}
