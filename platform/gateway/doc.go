// Package gateway is the platform's filtering forward proxy (DESIGN.md flow
// 5): an HTTP/1.1 proxy (goproxy) that authenticates every CONNECT and
// absolute-form request by the bearer JWT the agent attaches, applies the
// user's tenant policy, inspects TLS with the tenant's CA (leaf certificates
// minted and cached by package certs), serves a block page, and writes one
// access-log record per request or uninspected tunnel, in batches, off the
// data path.
//
// A gateway node keeps no state of its own: keys, policies, CAs and
// categories are read from the store and reloaded when the revocation feed
// says they changed; the same feed revokes sessions and users, whose open
// connections are closed within the feed's poll interval. Several nodes run
// side by side behind a TCP load balancer.
//
// Token lifetime is checked when a tunnel or request starts: a tunnel that
// outlives its token stays up (downloads and WebSockets must not break every
// 15 minutes) until it ends or its session or user is revoked.
package gateway
