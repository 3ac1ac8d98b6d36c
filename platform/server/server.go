// Package server assembles the platform's services behind one HTTP(S)
// listener: login and tokens (auth), the SCIM directory, the admin API, the
// revocation feed for gateways, enrolment and artifacts for agents
// (distrib), and health. It owns the lifecycle: New validates and opens,
// Run serves until its context ends, Close releases.
package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"vigie/platform/admin"
	"vigie/platform/auth"
	"vigie/platform/config"
	"vigie/platform/directory"
	"vigie/platform/distrib"
	"vigie/platform/feed"
	"vigie/platform/gateway"
	"vigie/platform/secret"
	"vigie/platform/store"
	"vigie/platform/token"
)

// Server is a running platform.
type Server struct {
	cfg     *config.Config
	log     *slog.Logger
	now     func() time.Time
	Store   store.Store
	Auth    *auth.Service
	Tokens  *token.Issuer
	Admin   *admin.API
	Distrib *distrib.Service
	Gateway *gateway.Gateway // nil unless the configuration runs one
	mux     *http.ServeMux
	seal    *secret.Sealer
}

// Options are what tests and the demo change; the zero value is the
// production default.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Store, if set, is used instead of opening cfg.Database.
	Store store.Store
	// Mount lets the caller add handlers (the demo's IdP) to the mux.
	Mount func(mux *http.ServeMux)
	// OriginRoots verifies origin certificates at the gateway. Default:
	// the system's roots.
	OriginRoots *x509.CertPool
	// GatewayDial connects the gateway to origins (tests send every host to
	// a loopback origin). Default: the network.
	GatewayDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// GatewayOnly makes a gateway node: the main listener serves only
	// /healthz and /metrics, and the login, SCIM, admin and feed APIs run
	// elsewhere (the nodes share the store).
	GatewayOnly bool
}

// New opens the store and builds every service.
func New(ctx context.Context, cfg *config.Config, o Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	key, err := secret.LoadOrCreateKey(cfg.MasterKeyFile)
	if err != nil {
		return nil, err
	}
	seal, err := secret.New(key)
	if err != nil {
		return nil, err
	}
	st := o.Store
	if st == nil {
		if st, err = store.Open(ctx, cfg.Database.Driver, cfg.Database.DSN); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg, log: o.Logger, now: o.Now, Store: st, mux: http.NewServeMux(), seal: seal}
	if err := ensureCategories(ctx, st, o.Now()); err != nil {
		return nil, err
	}
	s.Tokens = token.NewIssuer(st, seal, cfg.BaseURL, o.Now)
	s.Auth = auth.New(auth.Options{Store: st, Tokens: s.Tokens, Sealer: seal, BaseURL: cfg.BaseURL, Now: o.Now, Logger: o.Logger})
	s.Distrib = distrib.New(distrib.Options{Store: st, Sealer: seal, BaseURL: cfg.BaseURL, GatewayAddr: cfg.Gateway.PublicAddress(), Now: o.Now, Logger: o.Logger})
	s.Admin = &admin.API{Store: st, Auth: s.Auth, Tokens: s.Tokens, Sealer: seal, Distrib: s.Distrib, TokenSHA256: cfg.AdminTokenSHA256, BaseURL: cfg.BaseURL, Now: o.Now, Log: o.Logger}
	if cfg.Gateway != nil && cfg.Gateway.Listen != "" {
		if s.Gateway, err = gateway.New(gateway.Options{Store: st, Sealer: seal, BaseURL: cfg.BaseURL, Now: o.Now, Logger: o.Logger,
			RootCAs: o.OriginRoots, Dial: o.GatewayDial}); err != nil {
			return nil, err
		}
		s.mux.Handle("GET /metrics", requireToken(cfg.AdminTokenSHA256, s.Gateway.MetricsHandler()))
	}
	dir := directory.New(st, directory.Options{Now: o.Now, Logger: o.Logger, BaseURL: cfg.BaseURL})

	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := st.LastRevocation(r.Context()); err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	if o.GatewayOnly {
		if s.Gateway == nil {
			return nil, errors.New("server: a gateway node needs a gateway section in its configuration")
		}
		return s, nil
	}
	s.Auth.Register(s.mux)
	s.Admin.Register(s.mux)
	s.Distrib.Register(s.mux)
	s.mux.Handle("/t/{tenant}/scim/v2/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dir.Handler(r.PathValue("tenant")).ServeHTTP(w, r)
	}))
	s.mux.Handle("GET /api/v1/revocations", &feed.Handler{Store: st, TokenSHA256: cfg.FeedTokenSHA256, Log: o.Logger})
	s.mux.HandleFunc("GET /t/{tenant}/ca.pem", s.handleCABundle)
	s.mux.HandleFunc("GET /t/{tenant}/signin", s.handleSignIn)
	if o.Mount != nil {
		o.Mount(s.mux)
	}
	return s, nil
}

// Handler is the platform's HTTP handler.
func (s *Server) Handler() http.Handler { return securityHeaders(s.mux) }

// securityHeaders sets the headers every answer should carry.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// Listen opens the configured listener (a separate step so that callers
// can learn the address, port 0 included, before serving).
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("server: listen on %s: %w", s.cfg.Listen, err)
	}
	return ln, nil
}

// ListenGateway opens the gateway's listener, when the node runs one.
func (s *Server) ListenGateway() (net.Listener, error) {
	if s.Gateway == nil {
		return nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.Gateway.Listen)
	if err != nil {
		return nil, fmt.Errorf("server: gateway listen on %s: %w", s.cfg.Gateway.Listen, err)
	}
	return ln, nil
}

// Serve serves the API on ln (and the gateway on gln, when the node runs
// one) until ctx ends, then shuts down gracefully. It also removes expired
// login records and sessions every ten minutes.
func (s *Server) Serve(ctx context.Context, ln, gln net.Listener) error {
	if s.Gateway != nil && gln != nil {
		gctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go s.Gateway.Run(gctx)
		go func() {
			if err := s.Gateway.Serve(gctx, gln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("server: gateway stopped", "err", err)
			}
		}()
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second, // above the feed's longest poll
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		if s.cfg.TLS != nil {
			errc <- srv.ServeTLS(ln, s.cfg.TLS.Cert, s.cfg.TLS.Key)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	sweep := time.NewTicker(10 * time.Minute)
	defer sweep.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-sweep.C:
			now := s.now()
			if err := s.Store.DeleteExpired(ctx, now, now.Add(-24*time.Hour)); err != nil {
				s.log.Error("server: removing expired records", "err", err)
			}
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := srv.Shutdown(shutdown)
			if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
				err = e
			}
			return err
		}
	}
}

// Close releases the store.
func (s *Server) Close() error { return s.Store.Close() }
