// Package installer will hold the agent's packaging: MSI for silent Windows
// installs, .deb/.rpm, the macOS pkg, and code signing (see DESIGN.md, flow 1).
//
// It is empty until the agent lifecycle issue; the folder exists so the
// repository layout matches docs/design.md from the start.
package installer
