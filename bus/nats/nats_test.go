package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/bus/bustest"
	natsbus "github.com/shoal-rt/shoal/bus/nats"
	"github.com/shoal-rt/shoal/internal/testenv"
)

// connect dials with the package's settings, retrying fast so restarts in
// tests are quick.
func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.ReconnectWait(20 * time.Millisecond), nats.ReconnectJitter(0, 0)}, opts...)
	nc, err := natsbus.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func newBus(t *testing.T, nc *nats.Conn, prefix string) *natsbus.Bus {
	b := natsbus.New(nc, natsbus.Config{Prefix: prefix})
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	s := testenv.NATS(t)
	bustest.Run(t, func(t *testing.T) []bus.Bus {
		prefix := testenv.Prefix(t)
		var buses []bus.Bus
		for i := 0; i < 3; i++ {
			buses = append(buses, newBus(t, connect(t, s.URL()), prefix))
		}
		return buses
	})
}

// awaitDelivery sends msg through send until in has it.
func awaitDelivery(t *testing.T, in *bustest.Recorder, msg string, send func([]byte) error) {
	t.Helper()
	testenv.CheckFor(t, bustest.Timeout, 20*time.Millisecond, func() error {
		if err := send([]byte(msg)); err != nil {
			return err
		}
		if !in.Has(msg) {
			return fmt.Errorf("%q not delivered", msg)
		}
		return nil
	})
}

func TestResubscribesAfterServerRestart(t *testing.T) {
	s := testenv.NATS(t)
	url := s.URL()
	prefix := testenv.Prefix(t)
	listenerConn, senderConn := connect(t, url), connect(t, url)
	listener, sender := newBus(t, listenerConn, prefix), newBus(t, senderConn, prefix)
	ctx := context.Background()

	var nodeIn, chIn bustest.Recorder
	if _, err := listener.ListenNode("n1", nodeIn.Handle); err != nil {
		t.Fatal(err)
	}
	if _, err := listener.ListenChannel("room.1", chIn.Handle); err != nil {
		t.Fatal(err)
	}
	sendNode := func(msg []byte) error { return sender.SendNode(ctx, "n1", msg) }
	publish := func(msg []byte) error { return sender.Publish(ctx, "room.1", msg) }
	awaitDelivery(t, &nodeIn, "before", sendNode)
	awaitDelivery(t, &chIn, "before", publish)
	losses, up := listener.Losses()
	if !up {
		t.Fatal("Losses: not up while connected")
	}

	s.Stop()
	testenv.CheckFor(t, bustest.Timeout, 10*time.Millisecond, func() error {
		if listenerConn.IsConnected() || senderConn.IsConnected() {
			return errors.New("clients still connected")
		}
		return nil
	})
	if _, up := listener.Losses(); up {
		t.Error("Losses: up while NATS is down")
	}
	// While NATS is down a send neither blocks nor fails: it is buffered.
	start := time.Now()
	if err := sender.SendNode(ctx, "n1", []byte("while-down")); err != nil {
		t.Errorf("SendNode while NATS is down: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("SendNode while NATS is down took %v", d)
	}

	restarted := time.Now()
	s.Start()
	// No new Listen: the old subscriptions must come back by themselves.
	awaitDelivery(t, &nodeIn, "after", sendNode)
	awaitDelivery(t, &chIn, "after", publish)
	t.Logf("delivery resumed %v after the server restarted", time.Since(restarted).Round(time.Millisecond))
	if r := listenerConn.Stats().Reconnects; r < 1 {
		t.Errorf("listener reconnects = %d, want at least 1", r)
	}
	// What was sent to the listener while it was away is lost: the count
	// says so (a receiver then re-checks the store at once).
	if n, up := listener.Losses(); !up || n <= losses {
		t.Errorf("Losses after a restart = %d, %v; want more than %d, up", n, up, losses)
	}
}

func TestSendWhileNATSDown(t *testing.T) {
	s := testenv.NATS(t)
	prefix := testenv.Prefix(t)
	const bufSize = 64 << 10
	nc := connect(t, s.URL(), nats.ReconnectBufSize(bufSize))
	b := newBus(t, nc, prefix)
	if !b.Connected() {
		t.Fatal("Connected is false with NATS up")
	}
	s.Stop()
	testenv.CheckFor(t, bustest.Timeout, 10*time.Millisecond, func() error {
		if !nc.IsReconnecting() {
			return fmt.Errorf("client status %v, want reconnecting", nc.Status())
		}
		return nil
	})
	if b.Connected() {
		t.Fatal("Connected is true with NATS down")
	}

	// Sends fill the bounded reconnect buffer, then fail; none blocks.
	ctx := context.Background()
	msg := make([]byte, 1024)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 4*bufSize/len(msg); i++ {
			if err := b.SendNode(ctx, "n1", msg); err != nil {
				done <- err
				return
			}
			if err := b.Publish(ctx, "c1", msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if !errors.Is(err, nats.ErrReconnectBufExceeded) {
			t.Fatalf("sending %d bytes into a %d byte reconnect buffer: %v, want ErrReconnectBufExceeded", 4*bufSize, bufSize, err)
		}
	case <-time.After(bustest.Timeout):
		t.Fatal("SendNode blocked while NATS is down")
	}

	// Listening while down returns after SubscribeTimeout at most, and the
	// listener works once NATS is back.
	start := time.Now()
	var in bustest.Recorder
	cancel, err := b.ListenNode("late", in.Handle)
	if err != nil {
		t.Fatalf("ListenNode while NATS is down: %v", err)
	}
	defer cancel()
	if d := time.Since(start); d > time.Second {
		t.Errorf("ListenNode while NATS is down took %v", d)
	}
	s.Start()
	other := newBus(t, connect(t, s.URL()), prefix)
	awaitDelivery(t, &in, "hello", func(msg []byte) error { return other.SendNode(ctx, "late", msg) })
}

// Nodes may start before NATS: Connect does not fail, and the bus works
// once NATS comes up.
func TestConnectBeforeServerStarts(t *testing.T) {
	port := testenv.FreePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	prefix := testenv.Prefix(t)
	listener := newBus(t, connect(t, url), prefix)
	sender := newBus(t, connect(t, url), prefix)
	var in bustest.Recorder
	if _, err := listener.ListenChannel("c", in.Handle); err != nil {
		t.Fatalf("ListenChannel before NATS is up: %v", err)
	}
	testenv.NATSOn(t, port)
	awaitDelivery(t, &in, "up", func(msg []byte) error { return sender.Publish(context.Background(), "c", msg) })
}

// A listener that falls behind loses messages (counted), not the sender's
// time.
func TestSlowListenerDropsAreCounted(t *testing.T) {
	s := testenv.NATS(t)
	prefix := testenv.Prefix(t)
	listener := natsbus.New(connect(t, s.URL()), natsbus.Config{Prefix: prefix, PendingMsgs: 10})
	t.Cleanup(func() { listener.Close() })
	sender := newBus(t, connect(t, s.URL()), prefix)
	bustest.ListenStuck(t, listener, "slow")
	for i := 0; i < 1000; i++ {
		if err := sender.SendNode(context.Background(), "slow", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, bustest.Timeout, 10*time.Millisecond, func() error {
		if d := listener.Dropped(); d < 1000-10-1 {
			return fmt.Errorf("Dropped() = %d, want at least %d", d, 1000-10-1)
		}
		return nil
	})
	// The drops were of a node listener: wake-ups may be among them.
	if n, _ := listener.Losses(); n < 1000-10-1 {
		t.Errorf("Losses() = %d, want at least %d", n, 1000-10-1)
	}
}

func TestPrefixIsCleaned(t *testing.T) {
	s := testenv.NATS(t)
	// A prefix with wildcards, spaces and empty tokens still gives valid,
	// working subjects.
	prefix := "bad *.> prefix.." + strconv.FormatInt(time.Now().UnixNano(), 10)
	a := newBus(t, connect(t, s.URL()), prefix)
	b := newBus(t, connect(t, s.URL()), prefix)
	var in bustest.Recorder
	if _, err := a.ListenNode("n", in.Handle); err != nil {
		t.Fatal(err)
	}
	awaitDelivery(t, &in, "ok", func(msg []byte) error { return b.SendNode(context.Background(), "n", msg) })
	// A bus with another prefix hears nothing of it.
	c := newBus(t, connect(t, s.URL()), testenv.Prefix(t))
	var otherIn bustest.Recorder
	if _, err := c.ListenNode("n", otherIn.Handle); err != nil {
		t.Fatal(err)
	}
	awaitDelivery(t, &in, "ok2", func(msg []byte) error { return b.SendNode(context.Background(), "n", msg) })
	if otherIn.Has("ok") || otherIn.Has("ok2") {
		t.Error("a bus with another prefix received the messages")
	}
}
