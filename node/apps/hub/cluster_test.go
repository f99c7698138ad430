package hub

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/internal/backendtest"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/store"
)

// clusterBackends runs each node on its own Redis and NATS clients of one
// real redis-server and one NATS server, with a key prefix of its own, as
// three processes would.
func clusterBackends(t testing.TB) backends {
	rs := testenv.Redis(t)
	ns := testenv.NATS(t)
	prefix := testenv.Prefix(t)
	return func(t testing.TB) (store.Store, bus.Bus) {
		bn := backendtest.Connect(t, rs.Addr, ns.URL(), prefix)
		return bn.Store, bn.Bus
	}
}

// TestClusterRecovery: a client sees some messages on node A, drops, and
// comes back as a NEW session on node B with since = the last offset it
// saw: it gets exactly the ones it missed, then new ones, and recovered
// is true. With the log trimmed past since, recovered is false.
func TestClusterRecovery(t *testing.T) {
	t.Parallel()
	hubs := startHubs(t, clusterBackends(t), 3, Config{File: File{Channels: []Rule{
		{Pattern: "short-*", HistorySize: 3},
		{Pattern: "*"},
	}}})
	ctx := context.Background()
	a := dial(t, hubs[0].base)
	a.send(`{"data_type":"subscribe","id":1,"data":{"channel":"room"}}`)
	a.expect("subscribe")
	var last float64
	for i := range 3 {
		if _, err := hubs[2].Publish(ctx, "room", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
		m := a.next()
		if m["n"] != float64(i) {
			t.Fatalf("live delivery %d: %v", i, m)
		}
		last = m["offset"].(float64)
	}
	a.conn.CloseNow()
	for i := 3; i < 8; i++ {
		if _, err := hubs[1].Publish(ctx, "room", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	b := dial(t, hubs[1].base)
	b.send(fmt.Sprintf(`{"data_type":"subscribe","id":2,"data":{"channel":"room","since":%d}}`, uint64(last)))
	if d := data(b.expect("subscribe")); d["recovered"] != true || d["offset"] != last+5 {
		t.Fatalf("subscribe reply %v, want recovered with offset %v", d, last+5)
	}
	go hubs[0].Publish(ctx, "room", []byte(`{"n":8}`))
	for i := 3; i <= 8; i++ {
		m := b.next()
		if m["n"] != float64(i) || m["offset"] != last+float64(i-2) {
			t.Fatalf("recovered message %d: %v", i, m)
		}
	}
	b.none(100 * time.Millisecond)

	// A channel whose log keeps 3: since too old.
	var first uint64
	for i := range 10 {
		off, err := hubs[0].Publish(ctx, "short-1", fmt.Appendf(nil, "%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = off
		}
	}
	c := dial(t, hubs[2].base)
	c.send(fmt.Sprintf(`{"data_type":"subscribe","id":3,"data":{"channel":"short-1","since":%d}}`, first))
	if d := data(c.expect("subscribe")); d["recovered"] != false {
		t.Fatalf("subscribe reply %v, want recovered false", d)
	}
	m := c.expect("data")
	if m["data"] == 1.0 || m["offset"].(float64) <= float64(first+1) {
		t.Fatalf("first replayed %v: want the oldest kept, after a gap", m)
	}
}

// TestClusterPresence: users are counted once across sessions and nodes,
// every node answers the same, and join/leave notices follow a user's
// first and last session.
func TestClusterPresence(t *testing.T) {
	t.Parallel()
	hubs := startHubs(t, clusterBackends(t), 3, Config{Verifier: testVerifier{}, File: File{Channels: []Rule{
		{Pattern: "room-*", Subscribe: SubscribeAuthenticated, JoinLeave: true},
	}}})
	ctx := context.Background()
	watcher := dial(t, hubs[0].base)
	watcher.auth("user:watcher")
	watcher.send(`{"data_type":"subscribe","data":{"channel":"room-1"}}`)
	watcher.expect("subscribe")
	watcher.expect("join")
	var sessions []*client
	for i, user := range []string{"ann", "bob", "ann"} {
		c := dial(t, hubs[i].base)
		c.auth("user:" + user)
		c.send(`{"data_type":"subscribe","data":{"channel":"room-1"}}`)
		c.expect("subscribe")
		sessions = append(sessions, c)
	}
	for _, user := range []string{"ann", "bob"} {
		m := watcher.expect("join")
		if d := data(m); d["user"] != user || d["channel"] != "room-1" || m["offset"] == nil {
			t.Fatalf("join notice %v, want %s", m, user)
		}
	}
	watcher.none(200 * time.Millisecond) // ann's second session: no notice
	for _, h := range hubs {
		p, err := h.Presence(ctx, "room-1")
		if err != nil {
			t.Fatal(err)
		}
		if p.Count != 3 || fmt.Sprint(p.Users) != "[ann bob watcher]" || p.Sessions != 4 {
			t.Fatalf("Presence = %+v", p)
		}
	}
	sessions[1].send(`{"data_type":"presence","id":9,"data":{"channel":"room-1"}}`)
	for {
		m := sessions[1].next()
		if m["data_type"] == "presence" {
			if d := data(m); d["count"] != 3.0 || m["id"] != 9.0 {
				t.Fatalf("presence reply %v", m)
			}
			break
		}
	}
	ids, err := hubs[1].UserSessions(ctx, "ann")
	if err != nil || len(ids) != 2 {
		t.Fatalf("UserSessions(ann) = %v, %v", ids, err)
	}
	// One of ann's sessions goes: no leave. Both gone: leave.
	sessions[0].send(`{"data_type":"unsubscribe","data":{"channel":"room-1"}}`)
	watcher.none(200 * time.Millisecond)
	n, err := hubs[2].DisconnectUser(ctx, "ann")
	if err != nil || n != 2 {
		t.Fatalf("DisconnectUser = %d, %v", n, err)
	}
	if got := sessions[2].waitClosed(); got != `c[4003,"Disconnected by server"]` {
		t.Fatalf("closed with %s", got)
	}
	if d := data(watcher.expect("leave")); d["user"] != "ann" {
		t.Fatalf("leave notice %v", d)
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		p, err := hubs[0].Presence(ctx, "room-1")
		if err != nil {
			return err
		}
		if p.Count != 2 {
			return fmt.Errorf("presence %+v, want bob and watcher", p)
		}
		return nil
	})
	chans, err := hubs[0].Channels(ctx)
	if err != nil || fmt.Sprint(chans) != "[room-1]" {
		t.Fatalf("Channels = %v, %v", chans, err)
	}
}

// TestClusterRecoveryGranted: channels a token grants are joined by the
// auth itself, so their recovery rides on the auth: "since" per channel.
// A later subscribe with since says whether the subscription covers it.
func TestClusterRecoveryGranted(t *testing.T) {
	t.Parallel()
	hubs := startHubs(t, clusterBackends(t), 2, Config{Verifier: testVerifier{}})
	ctx := context.Background()
	a := dial(t, hubs[0].base)
	a.auth("user:ann:room")
	off, err := hubs[1].Publish(ctx, "room", []byte(`{"n":0}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := a.next(); m["n"] != 0.0 {
		t.Fatalf("live: %v", m)
	}
	a.conn.CloseNow()
	for i := 1; i <= 3; i++ {
		if _, err := hubs[0].Publish(ctx, "room", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}

	// Without since in the auth, the subscription starts after the
	// missed messages: a subscribe with since is told recovery failed.
	late := dial(t, hubs[1].base)
	late.auth("user:ann:room")
	late.send(fmt.Sprintf(`{"data_type":"subscribe","id":1,"data":{"channel":"room","since":%d}}`, off))
	if d := data(late.expect("subscribe")); d["recovered"] != false {
		t.Fatalf("subscribe after a plain auth: %v, want recovered false", d)
	}

	b := dial(t, hubs[1].base)
	b.expect("request_auth")
	b.send(fmt.Sprintf(`{"data_type":"auth","data":{"token":"user:ann:room","since":{"room":%d}}}`, off))
	n := 1
	for n <= 3 {
		m := b.next()
		switch m["data_type"] {
		case "auth":
			if d := data(m); fmt.Sprint(d["recovered"]) != "map[room:true]" {
				t.Fatalf("auth reply %v, want room recovered", d)
			}
		default:
			if m["n"] != float64(n) || m["offset"] != float64(off+uint64(n)) {
				t.Fatalf("recovered %v, want n=%d", m, n)
			}
			n++
		}
	}
	b.send(fmt.Sprintf(`{"data_type":"subscribe","id":2,"data":{"channel":"room","since":%d}}`, off))
	for {
		m := b.next()
		if m["data_type"] == "auth" {
			continue
		}
		if d := data(m); m["data_type"] != "subscribe" || d["recovered"] != true {
			t.Fatalf("subscribe again: %v, want recovered true", m)
		}
		break
	}
}
