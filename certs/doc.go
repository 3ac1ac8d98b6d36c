// Package certs is the certificate authority behind the gateway's TLS
// inspection (DESIGN.md, flows 5 and 6): it creates a tenant's CA, decides
// from a tenant's CA records which one signs and which ones agents must
// trust, and mints the leaf certificates the gateway presents to browsers.
//
// It is a pure library: no HTTP, no store, no logging, no key sealing. The
// platform wires it:
//
//   - Creation. [NewCA] returns a self-signed ECDSA P-256 CA as a PEM
//     certificate and a PKCS #8 DER key; the platform seals the key (package
//     platform/secret) and stores both as a store.CA.
//   - Rotation. The platform copies its store.CA rows into [Record] values
//     (certs does not import the store). [Schedule.Rotate] dates a new CA and
//     retires the old ones by the overlap rule; [Signing] says which CA signs
//     leaves now; [Bundle] is the PEM bundle that package distrib signs and
//     serves to agents, which install every certificate in it;
//     [NextChange] says when either answer changes next, since a rotation
//     takes effect a day after it is decided.
//   - Inspection. The gateway opens the signing CA with [ParseCA], builds a
//     [Minter] on it and sets tls.Config.GetCertificate to
//     [Minter.ForHost] of the CONNECT host. When [Signing] picks another CA
//     the gateway builds a new Minter and swaps it in; the old one's cache
//     goes with it.
//
// The overlap rule, in one line: a new CA is in the bundle at least
// PublishLead (default 24 hours) before it signs, so that every agent's
// 30-minute poll has installed it before a browser sees a leaf it signed;
// an old CA stays in the bundle Overlap (default 30 days) after it stops
// signing, longer than any leaf it signed lives, and long enough to switch
// back to it if the new one turns out wrong.
//
// What it is not: a general-purpose CA (no CRL, no OCSP, no client or code
// signing certificates; it makes no intermediate CA, and a tenant CA has
// path length 0 so that it signs leaves only), nor a cache shared between
// gateway nodes (each node mints its own leaves; minting is cheap, sharing
// private keys is not).
//
// Installing the CA bundle in the workstation's trust stores (system,
// Firefox NSS, Java) is the agent's half of flow 6 and a later issue. The plan
// is smallstep/truststore, behind the careful-and-reversible rule of
// STYLE.md practice 11: check before installing, install only certificates
// from a bundle whose signature verified, remember what was installed, and
// remove on uninstall or when a CA leaves the bundle exactly what the agent
// added, never a certificate someone else put there.
package certs
