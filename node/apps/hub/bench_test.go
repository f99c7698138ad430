package hub

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/sockjs"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// BenchmarkDelivery measures what the hub adds to each delivered message
// over a plain channel (the conformance app's /broadcast shape: sessions
// joined on open, the message delivered as published): time per delivery
// to websocket subscribers reading in this process, on one node with the
// memory store and bus, and on three nodes over real Redis and NATS (the
// subscribers spread over them, the publisher on the first).
//
//	go test -run XXX -bench Delivery -benchtime 2000x ./node/apps/hub/
func BenchmarkDelivery(b *testing.B) {
	const subs = 100
	payload := []byte(`{"data_type":"chat","user":"ann","text":"hello, world"}`)
	setups := []struct {
		name  string
		nodes int
		be    func(testing.TB) backends
	}{
		{"memory", 1, memoryBackends},
		{"3-nodes", 3, clusterBackends},
	}
	for _, setup := range setups {
		b.Run("plain/"+setup.name, func(b *testing.B) {
			be := setup.be(b)
			var bases []string
			var eps []*sockjs.Endpoint
			join := sockjs.HandlerFuncs{Open: func(s *sockjs.Session) error { return s.Subscribe(context.Background(), "room") }}
			for range setup.nodes {
				st, bs := be(b)
				node := nodetest.SockJSNode(b, sockjs.NodeConfig{Store: st, Bus: bs})
				ep, err := node.NewEndpoint(join, sockjs.Settings{Prefix: "/broadcast"})
				if err != nil {
					b.Fatal(err)
				}
				if err := ep.HandleChannels(sockjs.ChannelConfig{Pattern: "room"}); err != nil {
					b.Fatal(err)
				}
				bases = append(bases, nodetest.Serve(b, node, node.Handler(nil))+"/broadcast")
				eps = append(eps, ep)
			}
			publish := func() error { return eps[0].Publish(context.Background(), "room", string(payload)) }
			runDelivery(b, subs, bases, nil, publish)
		})
		b.Run("hub/"+setup.name, func(b *testing.B) {
			be := setup.be(b)
			var bases []string
			var hubs []*Hub
			for range setup.nodes {
				st, bs := be(b)
				node := nodetest.SockJSNode(b, sockjs.NodeConfig{Store: st, Bus: bs})
				h, err := New(node, Config{Verifier: testVerifier{}, File: File{Limits: Limits{MessageRate: -1}}})
				if err != nil {
					b.Fatal(err)
				}
				bases = append(bases, nodetest.Serve(b, node, node.Handler(nil))+DefaultPrefix)
				hubs = append(hubs, h)
			}
			publish := func() error { _, err := hubs[0].Publish(context.Background(), "room", payload); return err }
			runDelivery(b, subs, bases, []string{`{"data_type":"auth","data":{"token":"user:u:room"}}`}, publish)
		})
	}
}

// runDelivery opens subs websockets over bases (each sending hello first),
// waits until publishing reaches all of them, then publishes b.N messages
// in windows of 50 and reports the time per delivery.
func runDelivery(b *testing.B, subs int, bases []string, hello []string, publish func() error) {
	var got atomic.Int64
	text := []byte(`hello, world`)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	for i := range subs {
		conn := sockjstest.DialWS(b, bases[i%len(bases)]+fmt.Sprintf("/0/b%d/websocket", i))
		for _, m := range hello {
			if err := conn.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf("[%q]", m))); err != nil {
				b.Fatal(err)
			}
		}
		go func() {
			for {
				_, f, err := conn.Read(ctx)
				if err != nil {
					return
				}
				// Count channel messages only: each carries the text.
				if len(f) > 0 && f[0] == 'a' {
					got.Add(int64(bytes.Count(f, text)))
				}
			}
		}()
	}
	// Warm up until every subscriber gets a message.
	deadline := time.Now().Add(20 * time.Second)
	for {
		before := got.Load()
		if err := publish(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if got.Load()-before >= int64(subs) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("subscribers not all live after 20 s (%d deliveries of the last publish)", got.Load()-before)
		}
	}
	time.Sleep(100 * time.Millisecond)
	got.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	const window = 50
	for i := 0; i < b.N; i++ {
		if err := publish(); err != nil {
			b.Fatal(err)
		}
		if (i+1)%window == 0 || i == b.N-1 {
			want := int64(i+1) * int64(subs)
			for got.Load() < want {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*int64(subs)), "ns/delivery")
}
