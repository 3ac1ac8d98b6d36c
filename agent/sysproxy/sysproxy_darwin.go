package sysproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// On macOS proxy settings belong to network services (Wi-Fi, Ethernet,
// a VPN…) and are machine-wide, so setting every service covers every user
// session. Each service gets the automatic proxy configuration URL through
// networksetup (-setautoproxyurl, -setautoproxystate); configd tells
// running programs. A service that appears later (a USB adapter) is picked
// up by the next Check, which Keep runs every minute.
//
// Limits: networksetup cannot clear a URL, so a service that had none
// gets its automatic proxy turned off on Restore, with our URL left in the
// unused field; ProxyAddr and Bypass are not used (every macOS program
// that honours system proxies reads the PAC); a configuration profile
// (MDM) that sets proxies wins over these settings.

func init() {
	newPlatform = func(o *Options) platform { return &darwinPlatform{o: o} }
}

const networksetupPath = "/usr/sbin/networksetup"

type darwinPlatform struct {
	o *Options
}

func (p *darwinPlatform) services(ctx context.Context) ([]string, error) {
	out, err := networksetup(ctx, p.o, "-listallnetworkservices")
	if err != nil {
		return nil, err
	}
	return parseNetworkServices(out), nil
}

func (p *darwinPlatform) targets(ctx context.Context, s Settings) ([]target, error) {
	svcs, err := p.services(ctx)
	if err != nil {
		return nil, fmt.Errorf("sysproxy: list network services: %w", err)
	}
	ts := make([]target, 0, len(svcs))
	for _, svc := range svcs {
		ts = append(ts, &serviceTarget{o: p.o, service: svc, pac: s.PACURL})
	}
	return ts, nil
}

func (p *darwinPlatform) restore(ctx context.Context, key string, raw json.RawMessage) error {
	var rec serviceRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return fmt.Errorf("sysproxy: restore %s: bad record: %w", key, err)
	}
	svcs, err := p.services(ctx)
	if err != nil {
		return fmt.Errorf("sysproxy: restore %s: %w", key, err)
	}
	if !slices.Contains(svcs, rec.Service) {
		return nil // the service is gone, and its settings with it
	}
	cur, err := getAutoProxy(ctx, p.o, rec.Service)
	if err != nil {
		return fmt.Errorf("sysproxy: restore %s: %w", key, err)
	}
	if !rec.Applied || cur != rec.Wrote {
		return nil // changed since we set it: theirs stays
	}
	if rec.Prev.URL != "" {
		if _, err := networksetup(ctx, p.o, "-setautoproxyurl", rec.Service, rec.Prev.URL); err != nil {
			return fmt.Errorf("sysproxy: restore %s: %w", key, err)
		}
	}
	state := "off"
	if rec.Prev.Enabled {
		state = "on"
	}
	if _, err := networksetup(ctx, p.o, "-setautoproxystate", rec.Service, state); err != nil {
		return fmt.Errorf("sysproxy: restore %s: %w", key, err)
	}
	return nil
}

// notify has nothing to do: configd notifies running programs.
func (p *darwinPlatform) notify(context.Context) {}

// serviceRecord is a network service's record in the state file.
type serviceRecord struct {
	Service string    `json:"service"`
	Prev    autoProxy `json:"prev"`
	Applied bool      `json:"applied,omitempty"`
	Wrote   autoProxy `json:"wrote,omitzero"`
}

type serviceTarget struct {
	o       *Options
	service string
	pac     string
}

func (t *serviceTarget) key() string { return "networkservice:" + t.service }

func (t *serviceTarget) capture(ctx context.Context) (json.RawMessage, error) {
	prev, err := getAutoProxy(ctx, t.o, t.service)
	if err != nil {
		return nil, fmt.Errorf("sysproxy: %s: %w", t.key(), err)
	}
	return json.Marshal(serviceRecord{Service: t.service, Prev: prev})
}

func (t *serviceTarget) inPlace(ctx context.Context, _ json.RawMessage) (bool, error) {
	cur, err := getAutoProxy(ctx, t.o, t.service)
	if err != nil {
		return false, fmt.Errorf("sysproxy: %s: %w", t.key(), err)
	}
	return cur == autoProxy{URL: t.pac, Enabled: true}, nil
}

func (t *serviceTarget) apply(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var rec serviceRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("sysproxy: %s: bad record: %w", t.key(), err)
	}
	if _, err := networksetup(ctx, t.o, "-setautoproxyurl", t.service, t.pac); err != nil {
		return nil, fmt.Errorf("sysproxy: %s: %w", t.key(), err)
	}
	if _, err := networksetup(ctx, t.o, "-setautoproxystate", t.service, "on"); err != nil {
		return nil, fmt.Errorf("sysproxy: %s: %w", t.key(), err)
	}
	rec.Applied, rec.Wrote = true, autoProxy{URL: t.pac, Enabled: true}
	return json.Marshal(rec)
}

func getAutoProxy(ctx context.Context, o *Options, service string) (autoProxy, error) {
	out, err := networksetup(ctx, o, "-getautoproxyurl", service)
	if err != nil {
		return autoProxy{}, err
	}
	return parseAutoProxy(out)
}

// networksetup runs networksetup; it reports some errors on standard
// output with exit status 0, as "** Error: …".
func networksetup(ctx context.Context, o *Options, args ...string) ([]byte, error) {
	out, err := o.Run(ctx, networksetupPath, args...)
	if err != nil {
		return nil, err
	}
	if i := strings.Index(string(out), "** Error"); i >= 0 {
		return nil, fmt.Errorf("networksetup %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out[i:])))
	}
	return out, nil
}
