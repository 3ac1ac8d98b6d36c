package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// tokenResponse is the token endpoint's answer (RFC 6749 §5.1, plus the
// platform's refresh_expires_in: seconds until the login session ends).
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
}

// oauthError is an error answer of the platform (RFC 6749 §5.2), or any
// other non-200 answer.
type oauthError struct {
	Status     int    `json:"-"`
	Code       string `json:"error"`
	Desc       string `json:"error_description"`
	retryAfter time.Duration
}

func (e *oauthError) Error() string {
	s := fmt.Sprintf("session: platform answered %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Desc != "" {
		s += ": " + e.Desc
	}
	return s
}

// sessionGone says whether err means the login session is over at the
// platform (revoked, expired, a refresh token reused, the user disabled):
// retrying cannot help, the user must sign in again.
func sessionGone(err error) bool {
	var oe *oauthError
	return errors.As(err, &oe) && oe.Code == "invalid_grant"
}

// retryAfterOf is the platform's Retry-After on err, if any.
func retryAfterOf(err error) time.Duration {
	var oe *oauthError
	if errors.As(err, &oe) {
		return oe.retryAfter
	}
	return 0
}

const maxBody = 64 << 10

// grant posts form to the token endpoint, adding client_id and device.
func (m *Manager) grant(ctx context.Context, form url.Values) (*tokenResponse, error) {
	form.Set("client_id", ClientID)
	if m.o.Device != "" {
		form.Set("device", m.o.Device)
	}
	body, status, hdr, err := m.post(ctx, m.tokenURL, form)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, answerError(status, hdr, body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("session: token endpoint: unreadable answer: %w", err)
	}
	switch {
	case tr.AccessToken == "" || tr.RefreshToken == "":
		return nil, errors.New("session: token endpoint: answer without access_token or refresh_token")
	case !strings.EqualFold(tr.TokenType, "Bearer"):
		return nil, fmt.Errorf("session: token endpoint: token_type %q, want Bearer", tr.TokenType)
	case tr.ExpiresIn <= 0 || tr.RefreshExpiresIn <= 0:
		return nil, fmt.Errorf("session: token endpoint: lifetimes %d s and %d s, want both positive", tr.ExpiresIn, tr.RefreshExpiresIn)
	}
	return &tr, nil
}

// revoke ends the login session of a refresh token at the platform
// (RFC 7009).
func (m *Manager) revoke(ctx context.Context, refresh string) error {
	form := url.Values{"token": {refresh}, "token_type_hint": {"refresh_token"}, "client_id": {ClientID}}
	body, status, hdr, err := m.post(ctx, m.revokeURL, form)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return answerError(status, hdr, body)
	}
	return nil
}

func (m *Manager) post(ctx context.Context, to string, form url.Values) (body []byte, status int, hdr http.Header, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, 0, nil, fmt.Errorf("session: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("session: reaching the platform: %w", err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, 0, nil, fmt.Errorf("session: reading the platform's answer: %w", err)
	}
	return body, resp.StatusCode, resp.Header, nil
}

func answerError(status int, hdr http.Header, body []byte) error {
	oe := &oauthError{Status: status}
	json.Unmarshal(body, oe) // not JSON (a proxy's page): the status says enough
	if s, err := strconv.Atoi(hdr.Get("Retry-After")); err == nil && s > 0 {
		oe.retryAfter = time.Duration(s) * time.Second
	}
	return oe
}

// newTokens turns a token answer into tokens. Lifetimes count from asked,
// when the request left: the platform started them a little later, so the
// agent's view of every expiry errs early, never late.
func newTokens(tr *tokenResponse, asked time.Time) *tokens {
	t := &tokens{access: tr.AccessToken, refresh: tr.RefreshToken, issued: asked,
		accessExp:  asked.Add(time.Duration(tr.ExpiresIn) * time.Second),
		sessionExp: asked.Add(time.Duration(tr.RefreshExpiresIn) * time.Second)}
	if t.accessExp.After(t.sessionExp) {
		t.accessExp = t.sessionExp
	}
	return t
}
