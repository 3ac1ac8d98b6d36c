package gateway

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"vigie/platform/store"
)

// accessLog writes records in batches off the data path. The queue is
// bounded: when the store cannot keep up, records are dropped and counted
// (vigie_gateway_log_dropped_total) and the log says so, never silently,
// and the proxy never waits for the log.
type accessLog struct {
	ch      chan *store.AccessRecord
	st      store.Store
	batch   int
	every   time.Duration
	log     *slog.Logger
	m       *metrics
	done    sync.WaitGroup
	now     func() time.Time
	dropped atomic.Int64 // dropped for a full queue since the last warning
	warned  atomic.Int64 // when the last warning was logged, Unix ns
}

// dropWarnEvery is how often, at most, the log says that the queue is full.
const dropWarnEvery = time.Minute

func newAccessLog(st store.Store, queue, batch int, every time.Duration, log *slog.Logger, m *metrics, now func() time.Time) *accessLog {
	a := &accessLog{ch: make(chan *store.AccessRecord, queue), st: st, batch: batch, every: every, log: log, m: m, now: now}
	a.done.Add(1)
	return a
}

func (a *accessLog) add(r *store.AccessRecord) {
	select {
	case a.ch <- r:
	default:
		a.m.logDropped.Inc()
		a.dropped.Add(1)
		// Said here, not by the writer: when the queue is full, the writer
		// is usually stuck on the store.
		now := a.now().UnixNano()
		if last := a.warned.Load(); now-last >= int64(dropWarnEvery) && a.warned.CompareAndSwap(last, now) {
			a.log.Warn("gateway: access-log queue full: the store is not keeping up; records dropped (vigie_gateway_log_dropped_total)",
				"records", a.dropped.Swap(0), "queue", cap(a.ch))
		}
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
