package loadtest

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// progress ticks the recorder every second and, when a writer is set,
// prints a live line: on a terminal rewritten in place, elsewhere one line
// every five seconds. The returned func stops it.
func (r *runner) progress() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	w := r.cfg.Progress
	tty := isTerminal(w)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		n := 0
		var last *ProcSample
		lastAt := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			var cpu float64
			var rss int64
			if len(r.cfg.ServerPIDs) > 0 {
				if s, err := SampleProcs(r.cfg.ServerPIDs); err == nil {
					now := time.Now()
					if last != nil {
						cpu = round3((s.CPUSeconds - last.CPUSeconds) / now.Sub(lastAt).Seconds())
					}
					last, lastAt, rss = &s, now, s.RSSKiB
				}
			}
			p := r.rec.TickWith(cpu, rss)
			n++
			if w == nil || (!tty && n%5 != 0) {
				continue
			}
			line := r.progressLine(p)
			if tty {
				fmt.Fprintf(w, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(w, line)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		if w != nil && tty {
			fmt.Fprint(w, "\r\033[K")
		}
	}
}

func (r *runner) progressLine(p Point) string {
	lat := "-"
	if p.P50 > 0 {
		lat = fmt.Sprintf("p50 %s p99 %s", fmtMicros(p.P50), fmtMicros(p.P99))
	}
	server := ""
	if p.ServerRSSKiB > 0 {
		server = fmt.Sprintf("  server %.0f%% cpu %s", 100*p.ServerCPU, fmtKiB(p.ServerRSSKiB))
	}
	return fmt.Sprintf("[%s %s] %5.0fs %-7s sessions %d  sent %d/s  recv %d/s  %s  errors %d%s",
		r.cfg.Label, r.cfg.Scenario, p.T, p.Phase, p.Sessions, p.Sent, p.Received, lat, r.rec.errors.Load(), server)
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
