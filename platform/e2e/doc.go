// Package e2e is the platform's end-to-end suite: the platform in process
// on loopback, signing people in through an independent SAML IdP (the npm
// package saml-idp, run with Node) with an HTTP client that keeps cookies
// and submits the IdP's pages the way a browser does, through to the
// agent's loopback callback, the tokens and their revocation.
//
// The tests carry the build tag e2e, so `go test ./...` leaves them out:
// they need Node and the npm packages of package-lock.json. Run them with
// `go tool task e2e`, which installs those first (`npm ci` here).
//
// It is not where the platform's behaviour is specified in detail (that is
// each package's own tests, against the in-process IdP of platformtest); it
// checks that the pieces hold together against someone else's IdP.
package e2e
