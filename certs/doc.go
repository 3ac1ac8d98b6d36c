// Package certs will hold certificate authority creation and rotation for the
// platform and trust-store installation for the agent (see DESIGN.md, flow 6).
//
// It is empty until the gateway issue builds TLS inspection; the folder exists
// so the repository layout matches docs/design.md from the start.
package certs
