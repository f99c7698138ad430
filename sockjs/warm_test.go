package sockjs

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// TestWarmGoroutinesNeverQueue: functions given at once all run at once
// (each waits for all the others), so a slow release never delays another.
func TestWarmGoroutinesNeverQueue(t *testing.T) {
	w := newWarmGoroutines(time.Minute, nil)
	const n = 50
	var started, all sync.WaitGroup
	started.Add(n)
	all.Add(n)
	for range n {
		w.Go(func() {
			started.Done()
			started.Wait()
			all.Done()
		})
	}
	done := make(chan struct{})
	go func() { all.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not every function ran at once")
	}
}

// TestWarmGoroutinesReused: one after another, functions run on the
// goroutine the first one started.
func TestWarmGoroutinesReused(t *testing.T) {
	w := newWarmGoroutines(time.Hour, nil)
	ran := make(chan struct{})
	for range 20 {
		w.Go(func() { ran <- struct{}{} })
		<-ran
		// The goroutine waits for the next function before Go sends it:
		// counted as waiting, and parked in its select (between the two,
		// Go would find no receiver and rightly start another).
		waitingFor(t, w, 1)
		parkedInRun(t)
	}
	if n := w.started.Load(); n != 1 {
		t.Fatalf("20 functions one after another started %d goroutines, want 1", n)
	}
}

// TestWarmGoroutinesGoneAfterKeep: a goroutine that gets nothing for keep
// ends; the next function starts another.
func TestWarmGoroutinesGoneAfterKeep(t *testing.T) {
	w := newWarmGoroutines(50*time.Millisecond, nil)
	ran := make(chan struct{})
	w.Go(func() { ran <- struct{}{} })
	<-ran
	waitingFor(t, w, 1)
	waitingFor(t, w, 0) // keep passed: it ended
	w.Go(func() { ran <- struct{}{} })
	<-ran
	if n := w.started.Load(); n != 2 {
		t.Fatalf("after the idle one ended, %d goroutines started, want 2", n)
	}
}

// TestWarmGoroutinesEndAtStop: a waiting goroutine ends when stop closes,
// long before keep.
func TestWarmGoroutinesEndAtStop(t *testing.T) {
	stop := make(chan struct{})
	w := newWarmGoroutines(time.Hour, stop)
	ran := make(chan struct{})
	w.Go(func() { ran <- struct{}{} })
	<-ran
	waitingFor(t, w, 1)
	close(stop)
	waitingFor(t, w, 0)
}

// waitingFor waits until want of w's goroutines wait for work.
func waitingFor(t *testing.T, w *warmGoroutines, want int64) {
	t.Helper()
	testenv.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if n := w.waiting.Load(); n != want {
			return fmt.Errorf("%d goroutines waiting for work, want %d", n, want)
		}
		return nil
	})
}

// parkedInRun waits until a goroutine of warmGoroutines.run is parked in
// its select, where an unbuffered send finds it.
func parkedInRun(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	testenv.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		n := runtime.Stack(buf, true)
		for _, g := range bytes.Split(buf[:n], []byte("\n\n")) {
			if bytes.Contains(g, []byte(" [select")) && bytes.Contains(g, []byte("(*warmGoroutines).run(")) {
				return nil
			}
		}
		return fmt.Errorf("no goroutine parked in warmGoroutines.run")
	})
}
