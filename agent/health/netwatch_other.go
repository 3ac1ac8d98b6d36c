//go:build !linux

package health

import "context"

// NetworkChanges is nil here: callers rely on their timers.
// (Windows: NotifyIpInterfaceChange; macOS: SCDynamicStore — not yet.)
func NetworkChanges(ctx context.Context) <-chan struct{} { return nil }
