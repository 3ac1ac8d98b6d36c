package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"vigie/pac"
	"vigie/platform/distrib/artifact"
)

// Errors a kind's LastError wraps, for callers that branch on them.
var (
	// ErrRollback: the platform offered a version lower than the one in
	// use (a replayed old envelope, or a platform restored from an old
	// backup: its operator must publish a version above the agents').
	ErrRollback = errors.New("sync: refused to go back to an older version")
	// ErrInvalid: the envelope verified, but its content is not usable.
	ErrInvalid = errors.New("sync: invalid content")
)

// maxSkew is how far the platform's clock may be from ours before device
// tokens are dated by the platform's clock; the platform tolerates a
// minute.
const maxSkew = 30 * time.Second

// syncKind fetches one kind and applies it, recording the outcome.
func (s *Syncer) syncKind(ctx context.Context, kind string) error {
	attempt := s.now()
	changed, err := s.fetch(ctx, kind)
	if err != nil && ctx.Err() != nil {
		return err // stopping, not failing: nothing to record or log
	}
	s.record(kind, attempt, changed, err)
	return err
}

// fetch gets one kind and applies a new version; changed reports whether
// the content of the snapshot changed.
func (s *Syncer) fetch(ctx context.Context, kind string) (changed bool, err error) {
	st := s.Current().Status[kind]
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/t/"+s.o.Tenant+"/agent/"+kind, nil)
	if err != nil {
		return false, fmt.Errorf("sync: %s: %w", kind, err)
	}
	tok, err := s.o.Device.Token(s.base, s.o.Tenant, s.now().Add(time.Duration(s.skew.Load())))
	if err != nil {
		return false, fmt.Errorf("sync: %s: %w", kind, err)
	}
	req.Header.Set("Authorization", artifact.DeviceScheme+" "+tok)
	req.Header.Set("Accept", "application/json")
	if st.ETag != "" {
		req.Header.Set("If-None-Match", st.ETag)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("sync: %s: %w", kind, err)
	}
	defer resp.Body.Close()
	s.learnSkew(resp)
	switch resp.StatusCode {
	case http.StatusNotModified:
		return false, nil
	case http.StatusOK:
	default:
		return false, fmt.Errorf("sync: %s: the platform answered %s%s", kind, resp.Status, platformSays(resp.Body))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, artifact.MaxEnvelopeSize+1))
	if err != nil {
		return false, fmt.Errorf("sync: %s: reading the answer: %w", kind, err)
	}
	return s.apply(kind, body, resp.Header.Get("ETag"))
}

// platformSays returns the platform's error message from an error answer,
// for the log.
func platformSays(body io.Reader) string {
	var e struct {
		Error string `json:"error"`
	}
	data, _ := io.ReadAll(io.LimitReader(body, 4<<10))
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return ": " + e.Error
	}
	return ""
}

// learnSkew reads the platform's clock from its Date header. An unsigned
// header can only make our tokens be refused, which whoever can change it
// could do anyway.
func (s *Syncer) learnSkew(resp *http.Response) {
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return
	}
	skew := date.Sub(s.now())
	if skew > -maxSkew && skew < maxSkew {
		skew = 0
	}
	s.skew.Store(int64(skew))
}

// apply checks an envelope as fetched and, when it is a new version that
// passes every check, makes it current and caches it. etag is the
// answer's; without one, the platform's (artifact.ETag) is computed.
func (s *Syncer) apply(kind string, body []byte, etag string) (changed bool, err error) {
	if etag == "" {
		etag = artifact.ETag(body)
	}
	cur := s.Current()
	env, err := artifact.Open(body, s.o.DistributionKey, kind, s.o.Tenant)
	if err != nil {
		return false, fmt.Errorf("sync: %s: %w", kind, err)
	}
	have := cur.envelopes[kind]
	switch {
	case have != nil && env.Version < have.Version:
		return false, fmt.Errorf("%w: %s version %d offered, version %d in use", ErrRollback, kind, env.Version, have.Version)
	case have != nil && env.Version == have.Version:
		if !bytes.Equal(env.Payload, have.Payload) {
			return false, fmt.Errorf("%w: %s version %d offered with other content than the version %d in use", ErrInvalid, kind, env.Version, have.Version)
		}
		// The same version (after a restart, or a cache that lost its
		// ETag): nothing changes but the ETag.
		next := cur.clone()
		st := next.Status[kind]
		st.ETag = etag
		next.Status[kind] = st
		s.cur.Store(next)
		return false, nil
	}
	next := cur.clone()
	if err := s.install(next, env); err != nil {
		return false, fmt.Errorf("%w: %s version %d: %v", ErrInvalid, kind, env.Version, err)
	}
	st := next.Status[kind]
	st.ETag = etag
	next.Status[kind] = st
	// Cache first, so that what runs is what the next start finds; a cache
	// that cannot be written does not stop a good version from applying.
	if err := s.writeCache(kind, body); err != nil {
		s.log.Error("sync: cannot cache the new version; a restart would use the previous one", "kind", kind, "version", env.Version, "err", err)
	}
	s.cur.Store(next)
	s.log.Info("sync: new version applied", "kind", kind, "version", env.Version, "previous", cur.Status[kind].Version)
	return true, nil
}

// install checks the content of a verified envelope and puts it in snap;
// its errors say what is wrong with the content.
func (s *Syncer) install(snap *Snapshot, env *artifact.Envelope) error {
	switch env.Kind {
	case artifact.KindConfig:
		c, err := artifact.ParseConfig(env.Payload)
		if err != nil {
			return err
		}
		snap.Config = c
	case artifact.KindPAC:
		script, err := pac.New(env.Payload, s.o.PACOptions)
		if err != nil {
			return err
		}
		snap.PAC = script
	case artifact.KindCA:
		if _, err := artifact.ParseCABundle(env.Payload); err != nil {
			return err
		}
		snap.CABundle = env.Payload
	case artifact.KindRelease:
		r, err := artifact.ParseRelease(env.Payload, false)
		if err != nil {
			return err
		}
		snap.Release = r
	default:
		return fmt.Errorf("unknown kind %q", env.Kind)
	}
	snap.envelopes[env.Kind] = env
	st := snap.Status[env.Kind]
	st.Version, st.IssuedAt = env.Version, env.IssuedAt
	snap.Status[env.Kind] = st
	return nil
}

// record writes the outcome of an attempt in the snapshot, logs a kind
// that starts or stops failing (once per transition, not per attempt), and
// tells Changes' reader about new content.
func (s *Syncer) record(kind string, attempt time.Time, changed bool, err error) {
	next := s.Current().clone()
	st := next.Status[kind]
	st.LastAttempt, st.LastError = attempt, err
	if err == nil {
		st.LastSuccess = s.now()
	} else {
		st.Failures++
	}
	next.Status[kind] = st
	s.cur.Store(next)

	switch {
	case err != nil && !s.failing[kind]:
		s.log.Warn("sync: fetching failed; keeping the last good copy", "kind", kind, "version", st.Version, "err", err)
	case err == nil && s.failing[kind]:
		s.log.Info("sync: fetching works again", "kind", kind, "version", st.Version)
	}
	s.failing[kind] = err != nil
	if changed {
		s.notify()
	}
}

// String describes a status for logs and tests.
func (st Status) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version %d", st.Version)
	if st.LastError != nil {
		fmt.Fprintf(&b, ", failing (%d failures): %v", st.Failures, st.LastError)
	}
	return b.String()
}
