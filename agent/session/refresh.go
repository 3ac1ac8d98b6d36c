package session

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"
)

// Run refreshes every signed-in user's access token at about 2/3 of its
// lifetime (nextRefresh), one refresh at a time per user, retrying network
// and server errors with backoff (retryAt). A refresh the platform refuses
// with invalid_grant signs the user out at once; at the end of the login
// session (7 days) the user is signed out and must sign in again. Run
// returns nil when ctx ends, after its refreshes have stopped.
func (m *Manager) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("session: Run is already running")
	}
	defer m.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before wg.Wait: stops the refreshes under way

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-m.wake:
		}
		timer.Reset(m.tick(ctx, &wg))
	}
}

// tick starts the refreshes that are due, signs out users whose session has
// ended, and returns how long Run may wait before looking again.
func (m *Manager) tick(ctx context.Context, wg *sync.WaitGroup) time.Duration {
	now := m.now()
	wait := maxWait
	var ended []*user
	m.mu.Lock()
	for _, u := range m.users {
		if u.pending != nil && !u.pending.usable(now) {
			u.pending = nil
		}
		if u.tok == nil || u.busy != opNone {
			continue
		}
		switch {
		case !now.Before(u.tok.sessionExp):
			u.tok = nil
			u.lastErr = "the login session has reached its end: sign in again"
			ended = append(ended, u)
		case !now.Before(u.next):
			u.busy, u.done = opRefresh, make(chan struct{})
			wg.Add(1)
			go func(u *user, t *tokens) {
				defer wg.Done()
				m.refresh(ctx, u, t)
			}(u, u.tok)
		default:
			wait = min(wait, u.next.Sub(now))
		}
	}
	m.mu.Unlock()
	for _, u := range ended {
		m.log.Info("session: login session ended; the user must sign in again", "user", u.id)
		m.persist(u)
	}
	return wait
}

// refresh spends t's refresh token for a new pair. u.busy is opRefresh.
func (m *Manager) refresh(ctx context.Context, u *user, t *tokens) {
	asked := m.now()
	tr, err := m.grant(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t.refresh}})
	now := m.now()
	save, orphan := false, ""
	m.mu.Lock()
	switch {
	case u.tok != t:
		// Signed in again meanwhile: these tokens are no longer the
		// user's, and the session they belong to can end.
		if err == nil {
			orphan = tr.RefreshToken
		}
	case err == nil:
		m.setTokensLocked(u, newTokens(tr, asked))
		u.lastRefresh = now
		save = true
		if u.failures > 0 {
			m.log.Info("session: refresh works again", "user", u.id)
		}
	case sessionGone(err):
		u.tok = nil
		u.lastErr = "the platform ended the login session (" + err.Error() + "): sign in again"
		save = true
		m.log.Warn("session: refresh refused; user signed out", "user", u.id, "err", err)
	case ctx.Err() != nil:
		// Run is stopping; the next Run tries again at once.
	default:
		u.failures++
		u.lastErr = err.Error()
		u.next = retryAt(now, t, u.failures, m.jitter(), retryAfterOf(err))
		if u.failures == 1 {
			m.log.Warn("session: refresh failed; retrying", "user", u.id, "err", err, "retry_in", u.next.Sub(now).Round(time.Second),
				"access_expires_in", t.accessExp.Sub(now).Round(time.Second))
		} else {
			m.log.Debug("session: refresh failed again", "user", u.id, "failures", u.failures, "err", err)
		}
	}
	u.busy = opNone
	close(u.done)
	m.mu.Unlock()
	m.kick() // Run schedules the next attempt
	if save {
		m.persist(u)
	}
	if orphan != "" {
		if err := m.revoke(ctx, orphan); err != nil {
			m.log.Warn("session: could not revoke a replaced login session", "user", u.id, "err", err)
		}
	}
	if m.onRefresh != nil {
		m.onRefresh(u.id, err)
	}
}

// Logout ends the user's login session at the platform (RFC 7009), then
// forgets their tokens here, and drops a pending login. The tokens are
// forgotten even when the platform cannot be reached; the error says so.
// A refresh under way is waited for, since it may rotate the refresh token.
func (m *Manager) Logout(ctx context.Context, userID string) error {
	var u *user
	var t *tokens
	for {
		m.mu.Lock()
		u = m.users[userID]
		if u == nil {
			m.mu.Unlock()
			return nil
		}
		u.pending = nil
		if u.busy == opNone {
			u.busy, u.done, t = opLogout, make(chan struct{}), u.tok
			m.mu.Unlock()
			break
		}
		done := u.done
		m.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("session: logout of user %s: %w", userID, ctx.Err())
		}
	}
	var err error
	if t != nil {
		err = m.revoke(ctx, t.refresh)
	}
	m.mu.Lock()
	u.tok = nil
	u.failures, u.lastErr = 0, ""
	u.doneState = ""
	u.busy = opNone
	close(u.done)
	m.mu.Unlock()
	m.persist(u)
	if t == nil {
		return nil
	}
	if err != nil {
		m.log.Warn("session: signed out here, but the platform did not confirm the revocation", "user", userID, "err", err)
		return fmt.Errorf("session: logout of user %s: tokens forgotten here, but the platform did not confirm the revocation: %w", userID, err)
	}
	m.log.Info("session: signed out", "user", userID)
	return nil
}
