package service

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// LogFile is the agent's own log, in the state directory, rotated at 5 MB
// with three old copies kept: what `agent diag` collects.
func LogFile(stateDir string) io.WriteCloser {
	return &lumberjack.Logger{Filename: filepath.Join(stateDir, "agent.log"), MaxSize: 5, MaxBackups: 3, LocalTime: false}
}

// secrets are what must never leave the machine in a diagnostic bundle:
// JWTs (access and refresh tokens, device assertions), bearer values,
// OAuth codes and verifiers in URLs, and the enrolment secret.
var secrets = []*regexp.Regexp{
	regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`),
	regexp.MustCompile(`(?i)(bearer\s+)[^\s"',;]+`),
	regexp.MustCompile(`(?i)(\b(?:code|code_verifier|refresh_token|access_token|secret|enrollment_secret)["']?\s*[=:]\s*["']?)[^\s"'&,;}]+`),
}

// Redact replaces every secret-looking value in b.
func Redact(b []byte) []byte {
	for _, re := range secrets {
		if re.NumSubexp() > 0 {
			b = re.ReplaceAll(b, []byte("${1}[redacted]"))
		} else {
			b = re.ReplaceAll(b, []byte("[redacted]"))
		}
	}
	return b
}

// diagDir is the folder of a diag bundle's files.
const diagDir = "vigie-diag/"

// ReadDiag reads a bundle Diag wrote: file name (without the folder) →
// contents. For support tools and tests.
func ReadDiag(r io.Reader) (map[string]string, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[strings.TrimPrefix(h.Name, diagDir)] = string(b)
	}
}

// Diag writes a gzipped tar to w for support: the configuration, status
// (statusJSON, or statusErr when the agent did not answer), the agent's
// logs, the fail-open journal and the sync status, each with its secrets
// redacted. It holds no token: the token store is not read.
func Diag(w io.Writer, configPath string, cfg *Config, statusJSON []byte, statusErr error, now time.Time) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	add := func(name string, body []byte) error {
		body = Redact(body)
		if err := tw.WriteHeader(&tar.Header{Name: diagDir + name, Mode: 0o600, Size: int64(len(body)), ModTime: now}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	var about bytes.Buffer
	host, _ := os.Hostname()
	fmt.Fprintf(&about, "collected: %s\nhost: %s\nos: %s/%s\ngo: %s\nconfig: %s\nstate_dir: %s\n",
		now.UTC().Format(time.RFC3339), host, runtime.GOOS, runtime.GOARCH, runtime.Version(), configPath, cfg.StateDir)
	if statusErr != nil {
		fmt.Fprintf(&about, "status: the agent did not answer: %v\n", statusErr)
	}
	if err := add("about.txt", about.Bytes()); err != nil {
		return err
	}
	if b, err := os.ReadFile(configPath); err == nil {
		if err := add("agent.yaml", b); err != nil {
			return err
		}
	}
	if statusJSON != nil {
		if err := add("status.json", statusJSON); err != nil {
			return err
		}
	}
	// Logs, the journal and the cached artifacts' names and sizes.
	logs, _ := filepath.Glob(filepath.Join(cfg.StateDir, "agent*.log"))
	sort.Strings(logs)
	for _, f := range append(logs, filepath.Join(cfg.StateDir, "fail-open.jsonl"), filepath.Join(cfg.StateDir, "fail-open.jsonl.1")) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if err := add(filepath.Base(f), b); err != nil {
			return err
		}
	}
	var listing strings.Builder
	filepath.WalkDir(cfg.StateDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil {
			rel, _ := filepath.Rel(cfg.StateDir, path)
			fmt.Fprintf(&listing, "%s %10d %s %s\n", info.Mode(), info.Size(), info.ModTime().UTC().Format(time.RFC3339), rel)
		}
		return nil
	})
	if err := add("state-files.txt", []byte(listing.String())); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}
