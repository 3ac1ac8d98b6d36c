package health

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// portalAnswer is what one fetch of the portal-detection URL says.
type portalAnswer int

const (
	// portalOffline: the fetch failed at the network level. There is no
	// portal to pass, the network is just down (or the URL is blocked).
	portalOffline portalAnswer = iota
	// portalClear: 204 with an empty body, the answer of the real server.
	portalClear
	// portalIntercepted: any other answer, redirects included: something
	// on the network answers in the real server's place.
	portalIntercepted
)

// checkPortal fetches rawURL once with client and says what the answer
// means. The second result describes the answer for the logs: the status,
// and where a redirect points. client must not follow redirects: a portal's
// 302 is the evidence.
func checkPortal(ctx context.Context, client *http.Client, rawURL string) (portalAnswer, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return portalOffline, err.Error() // New validated the URL; not reached
	}
	// Portals that cache would answer for the real server otherwise.
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := client.Do(req)
	if err != nil {
		return portalOffline, "network error: " + err.Error()
	}
	defer resp.Body.Close()
	// One byte past empty is enough to tell; a login page is not read.
	n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 1))
	if resp.StatusCode == http.StatusNoContent && n == 0 {
		return portalClear, "204 No Content"
	}
	desc := resp.Status
	if loc := resp.Header.Get("Location"); loc != "" {
		desc += " to " + loc
	} else if resp.StatusCode == http.StatusNoContent {
		desc += " with a body"
	}
	return portalIntercepted, desc
}

// noRedirects makes a copy of c (nil: a fresh client) that returns a
// redirect as the answer instead of following it.
func noRedirects(c *http.Client) *http.Client {
	var cp http.Client
	if c != nil {
		cp = *c
	}
	cp.CheckRedirect = func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}
	return &cp
}

// parsePortalURL checks a portal-detection URL: absolute http or https,
// with a host.
func parsePortalURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("health: portal URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("health: portal URL %q: want an absolute http:// URL", raw)
	}
	return nil
}
