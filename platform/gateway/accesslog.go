package gateway

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"vigie/platform/store"
)

// accessLog writes records in batches off the data path. The queue is
// bounded: when the store cannot keep up, records are dropped and counted
// (vigie_gateway_log_dropped_total), never silently, and the proxy never
// waits for the log.
type accessLog struct {
	ch    chan *store.AccessRecord
	st    store.Store
	batch int
	every time.Duration
	log   *slog.Logger
	m     *metrics
	done  sync.WaitGroup
	warn  time.Time
}

func newAccessLog(st store.Store, queue, batch int, every time.Duration, log *slog.Logger, m *metrics) *accessLog {
	a := &accessLog{ch: make(chan *store.AccessRecord, queue), st: st, batch: batch, every: every, log: log, m: m}
	a.done.Add(1)
	return a
}

func (a *accessLog) add(r *store.AccessRecord) {
	select {
	case a.ch <- r:
	default:
		a.m.logDropped.Inc()
	}
}

// run writes until ctx ends, then drains the queue.
func (a *accessLog) run(ctx context.Context) {
	defer a.done.Done()
	t := time.NewTicker(a.every)
	defer t.Stop()
	buf := make([]*store.AccessRecord, 0, a.batch)
	flush := func(ctx context.Context) {
		if len(buf) == 0 {
			return
		}
		if err := a.st.AppendAccess(ctx, buf); err != nil {
			a.m.logDropped.Add(float64(len(buf)))
			a.log.Error("gateway: writing the access log; records dropped", "records", len(buf), "err", err)
		} else {
			a.m.logWritten.Add(float64(len(buf)))
		}
		buf = buf[:0]
	}
	for {
		select {
		case r := <-a.ch:
			buf = append(buf, r)
			if len(buf) >= a.batch {
				flush(ctx)
			}
		case <-t.C:
			flush(ctx)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for {
				select {
				case r := <-a.ch:
					buf = append(buf, r)
					if len(buf) >= a.batch {
						flush(final)
					}
				default:
					flush(final)
					return
				}
			}
		}
	}
}

// wait returns when run has flushed and stopped.
func (a *accessLog) wait() { a.done.Wait() }
