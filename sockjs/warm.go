package sockjs

import (
	"sync/atomic"
	"time"
)

// warmGoroutines runs functions on goroutines that wait a while for the
// next one when they finish, instead of on a new goroutine each. A poll's
// release (receiverEngine.release) goes down go-redis's deep call chain:
// begun on a fresh goroutine, every release grew its stack from the
// runtime's start size again (runtime.newstack and copystack were 9% of a
// cluster node's CPU on polling echo). A warm goroutine keeps its grown
// stack from one release to the next (the collector may halve it while it
// waits).
//
// Nothing queues: a function goes to a goroutine waiting for work, or to
// a new one, so as many run at once as before. The goroutines waiting end
// when stop closes (the node's Close), not a keep later.
type warmGoroutines struct {
	work chan func() // unbuffered: a send succeeds only into a waiting goroutine
	keep time.Duration
	stop <-chan struct{}
	// started and waiting count the goroutines begun and those waiting
	// for work now (for tests).
	started, waiting atomic.Int64
}

func newWarmGoroutines(keep time.Duration, stop <-chan struct{}) *warmGoroutines {
	return &warmGoroutines{work: make(chan func()), keep: keep, stop: stop}
}

// Go runs f on a waiting goroutine, or on a new one if none waits.
func (w *warmGoroutines) Go(f func()) {
	select {
	case w.work <- f:
	default:
		w.started.Add(1)
		go w.run(f)
	}
}

// run runs f, then what Go hands it, until none comes for w.keep.
func (w *warmGoroutines) run(f func()) {
	var idle *time.Timer
	for {
		f()
		if idle == nil {
			idle = time.NewTimer(w.keep)
		} else {
			idle.Reset(w.keep)
		}
		w.waiting.Add(1)
		f = nil
		select {
		case f = <-w.work:
		case <-idle.C:
		case <-w.stop:
		}
		w.waiting.Add(-1)
		if f == nil {
			return
		}
	}
}
