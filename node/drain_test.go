package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/nodetest"

	"github.com/coder/websocket"
)

// TestRollingRestartUnderLoad restarts every node of a three-node cluster
// in turn, with SIGTERM, while polling and streaming sessions echo a steady
// flow of messages through round-robin HAProxy. No session may be lost (no
// close frame, no second open frame) and every message must arrive exactly
// once, in order. A websocket on each draining node is closed with 1001.
//
// CI runs it with health checks every 200 ms and a drain delay of 1 s;
// SHOAL_DRAIN_DEPLOYED=1 runs it with haproxy.cfg's own checks (every 1 s)
// and the default drain delay (5 s).
func TestRollingRestartUnderLoad(t *testing.T) {
	const (
		pollers, streamers = 4, 4
		sendEvery          = 40 * time.Millisecond
	)
	deployed := os.Getenv("SHOAL_DRAIN_DEPLOYED") != ""
	drainDelay := time.Second
	if deployed {
		drainDelay = defaultDrainDelay
	}
	// Race-enabled binaries sleep 1 s at exit by default; the drain time
	// measured here is the program's own.
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	c := startGossipCluster(t, 3, "--drain-delay", drainDelay.String(), "--drain-timeout", "10s")
	lb := startBalancer(t, c.nodes, !deployed)

	ctx, stopReceiving := context.WithCancel(context.Background())
	defer stopReceiving()
	sendCtx, stopSending := context.WithCancel(context.Background())
	defer stopSending()
	type load struct {
		c         *nodetest.SockJSClient
		streaming bool
		mu        sync.Mutex
		sent      []string
		sendErrs  []string
	}
	var loads []*load
	var receivers, senders sync.WaitGroup
	for i := range pollers + streamers {
		l := &load{c: nodetest.NewSockJSClient(lb.url()+"/echo", fmt.Sprintf("s%d", i)), streaming: i >= pollers}
		loads = append(loads, l)
		receivers.Go(func() { l.c.Receive(ctx, l.streaming) })
	}
	// Senders start once every session is open.
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, l := range loads {
			if _, opens, _, _, _ := l.c.Snapshot(); opens != 1 {
				return fmt.Errorf("session %s not open", l.c.ID())
			}
		}
		return nil
	})
	for _, l := range loads {
		senders.Go(func() {
			t := time.NewTicker(sendEvery)
			defer t.Stop()
			for n := 0; ; n++ {
				select {
				case <-sendCtx.Done():
					return
				case <-t.C:
				}
				msg := fmt.Sprintf("%s-%d", l.c.ID(), n)
				// A send is never cut short by the end of sending: one
				// cancelled in flight may still reach the node and come
				// back, unaccounted for.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := l.c.Send(ctx, msg)
				cancel()
				l.mu.Lock()
				if err == nil {
					l.sent = append(l.sent, msg)
				} else {
					l.sendErrs = append(l.sendErrs, err.Error())
				}
				l.mu.Unlock()
			}
		})
	}
	time.Sleep(500 * time.Millisecond)

	var drains []time.Duration
	restartStart := time.Now()
	for _, n := range c.nodes {
		// A websocket held by the draining node, straight to it.
		ws, _, err := websocket.Dial(context.Background(), "ws://"+n.Addr+"/echo/000/ws/websocket", nil)
		if err != nil {
			t.Fatal(err)
		}
		wsEnd := make(chan string, 1)
		go func() {
			rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var frames []string
			for {
				_, b, err := ws.Read(rctx)
				if err != nil {
					wsEnd <- fmt.Sprintf("%v close %d", frames, websocket.CloseStatus(err))
					return
				}
				frames = append(frames, string(b))
			}
		}()

		start := time.Now()
		n.Terminate(t)
		lb.waitStatus(t, n.ID, "DOWN")
		if err := n.Wait(drainDelay + 15*time.Second); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		drains = append(drains, took)
		if code := n.Cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("%s exited with %d after SIGTERM:\n%s", n.ID, code, n.Output())
		}
		if got, want := <-wsEnd, `[o c[1001,"Going away"]] close 1001`; got != want {
			t.Fatalf("websocket on draining %s: %s, want %s", n.ID, got, want)
		}
		n.restart(t)
		lb.waitStatus(t, n.ID, "UP")
	}
	restartTook := time.Since(restartStart)
	time.Sleep(500 * time.Millisecond)
	stopSending()
	senders.Wait()

	// Every message sent comes back once, in order, on its session.
	testenv.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		for _, l := range loads {
			got, _, _, _, _ := l.c.Snapshot()
			l.mu.Lock()
			n := len(l.sent)
			l.mu.Unlock()
			if len(got) < n {
				return fmt.Errorf("session %s: %d of %d messages back", l.c.ID(), len(got), n)
			}
		}
		return nil
	})
	stopReceiving()
	receivers.Wait()
	total, receives, streams := 0, 0, 0
	var recvErrs []string
	for _, l := range loads {
		got, opens, closes, errs, rcv := l.c.Snapshot()
		receives += rcv
		if l.streaming {
			streams += rcv
		}
		recvErrs = append(recvErrs, errs...)
		kind := "polling"
		if l.streaming {
			kind = "streaming"
		}
		if opens != 1 || len(closes) != 0 {
			t.Errorf("%s session %s lost: %d open frames, close frames %v", kind, l.c.ID(), opens, closes)
		}
		if len(l.sendErrs) > 0 {
			t.Errorf("%s session %s: %d sends failed: %v", kind, l.c.ID(), len(l.sendErrs), l.sendErrs)
		}
		if !slices.Equal(got, l.sent) {
			t.Errorf("%s session %s: received %d messages, sent %d; not the same sequence", kind, l.c.ID(), len(got), len(l.sent))
		}
		total += len(l.sent)
	}
	// Streams last until a node ends them: every stream opened on a node
	// before its restart was ended by the drain and reopened.
	if streams <= streamers {
		t.Errorf("%d streams opened by %d streaming sessions: no stream was ended by a drain", streams, streamers)
	}
	if len(recvErrs) > 0 {
		t.Errorf("%d failed polls or streams: %v", len(recvErrs), recvErrs)
	}
	t.Logf("rolling restart of 3 nodes took %v; SIGTERM to exit: %v (drain delay %v); %d messages over %d sessions, %d polls and streams (%d streams), %d receive errors",
		restartTook.Round(time.Millisecond), roundAll(drains), drainDelay, total, len(loads), receives, streams, len(recvErrs))
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
