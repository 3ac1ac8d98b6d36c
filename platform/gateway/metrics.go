package gateway

import "github.com/prometheus/client_golang/prometheus"

// metrics are the node's Prometheus series.
type metrics struct {
	requests     *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	tunnels      prometheus.Gauge
	inspected    prometheus.Gauge
	logDropped   prometheus.Counter
	logWritten   prometheus.Counter
	revocations  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigie_gateway_requests_total",
			Help: "Requests and tunnels, by decision (allow, block, tunnel, auth, error)."}, []string{"decision"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigie_gateway_auth_failures_total",
			Help: "Requests refused for authentication, by reason."}, []string{"reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigie_gateway_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its response (tunnels: their lifetime is not counted).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"decision"}),
		tunnels: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigie_gateway_open_tunnels",
			Help: "Uninspected tunnels open."}),
		inspected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigie_gateway_open_inspected_tunnels",
			Help: "Inspected (TLS-intercepted) tunnels open."}),
		logDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigie_gateway_log_dropped_total",
			Help: "Access-log records dropped because the queue was full or the store failed."}),
		logWritten: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigie_gateway_log_written_total",
			Help: "Access-log records handed to the store."}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigie_gateway_feed_events_total",
			Help: "Revocation-feed events applied, by kind."}, []string{"kind"}),
	}
	reg.MustRegister(m.requests, m.authFailures, m.latency, m.tunnels, m.inspected, m.logDropped, m.logWritten, m.revocations)
	// Every series exists from the start, at zero, so dashboards and alerts
	// see a rate rather than a gap.
	for _, d := range []string{"allow", "block", "tunnel", "auth", "error"} {
		m.requests.WithLabelValues(d)
		m.latency.WithLabelValues(d)
	}
	for _, r := range []string{"no_token", "invalid", "expired", "revoked", "unknown_tenant"} {
		m.authFailures.WithLabelValues(r)
	}
	return m
}
