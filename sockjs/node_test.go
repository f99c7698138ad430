package sockjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/store"
)

// A node's life: its stats, what Close ends and that nothing outlives it,
// the release of a dead node's sessions and the take-over from a dead
// holder (killableStore).

// TestStats: the counters follow the traffic of a websocket and a polling
// session exactly.
func TestStats(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	n, _, base := newCluster(t).node(t, rec, Settings{})

	conn := dialWS(t, base+"/0/w/websocket")
	want(t, "open", readWS(t, conn), "o")
	testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if st := n.Stats(); st.SessionsActive != 1 || st.Transports[TransportWebsocket] != 1 || st.ConnectionsActive < 1 {
			return fmt.Errorf("stats with one websocket: %+v", st)
		}
		return nil
	})
	for i := range 5 {
		writeWS(t, conn, fmt.Sprintf(`["m%d"]`, i))
		want(t, "echo", readWS(t, conn), fmt.Sprintf(`a["m%d"]`, i))
	}
	_, body := do(t, "POST", base+"/0/p/xhr", "")
	want(t, "poll open", body, "o\n")
	do(t, "POST", base+"/0/p/xhr_send", `["x","y"]`)
	_, body = do(t, "POST", base+"/0/p/xhr", "")
	want(t, "poll echo", body, `a["x","y"]`+"\n")
	conn.Close(websocket.StatusNormalClosure, "")

	testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		st := n.Stats()
		if st.PacketsRecv != 7 || st.PacketsSent != 7 || st.SessionsOpened != 2 || st.SessionsClosed != 1 ||
			st.SessionsActive != 0 || st.Transports[TransportWebsocket] != 0 {
			return fmt.Errorf("stats after traffic: %+v", st)
		}
		return nil
	})
	// The rates come from one-second samples; 7 packets each way within
	// the window give a positive average no bigger than 7/s.
	testenv.CheckFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		st := n.Stats()
		if st.PacketsSentPS <= 0 || st.PacketsSentPS > 7 || st.PacketsRecvPS <= 0 || st.PacketsRecvPS > 7 {
			return fmt.Errorf("rates: sent %v/s, recv %v/s", st.PacketsSentPS, st.PacketsRecvPS)
		}
		return nil
	})
}

func TestStatsJSON(t *testing.T) {
	a := Stats{SessionsActive: 2, Transports: map[string]int64{TransportXHR: 2}, PacketsSent: 5, PacketsSentPS: 1.5}
	b := Stats{SessionsActive: 1, Transports: map[string]int64{TransportWebsocket: 1}, PacketsSent: 1, ConnectionsActive: 3}
	sum := a.Add(b)
	raw, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]float64{
		"sessions_active": 3, "transp_xhr": 2, "transp_websocket": 1, "transp_eventsource": 0,
		"connections_active": 3, "packets_sent": 6, "packets_sent_ps": 1.5, "connections_ps": 0, "packets_recv_ps": 0,
	} {
		if m[k] != v {
			t.Errorf("%s = %v, want %v (%s)", k, m[k], v, raw)
		}
	}
	var back Stats
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.SessionsActive != 3 || back.Transports[TransportXHR] != 2 || back.PacketsSent != 6 || back.PacketsSentPS != 1.5 {
		t.Fatalf("round trip: %+v", back)
	}
}

// TestReleaseNode: a survivor cleans up after a node: the websocket session
// it held is closed with OnClose once, and a polling session it held is
// served elsewhere at once.
func TestReleaseNode(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	recA, recB := &recorder{}, &recorder{}
	long := func(cfg *NodeConfig) { cfg.LeaseTTL = time.Hour }
	a, _, baseA := c.node(t, recA, Settings{}, long)
	b, eb, baseB := c.node(t, recB, Settings{}, long)

	conn := dialWS(t, baseA+"/0/w/websocket")
	want(t, "open", readWS(t, conn), "o")
	_, body := do(t, "POST", baseA+"/0/p/xhr", "")
	want(t, "poll open", body, "o\n")
	// The open poll holds the lease until its commit, after its answer:
	// A as holder must be the parked poll's lease, not that one's.
	// Otherwise B's poll below met A's finishing poll, waited for its
	// commit, and could take the lease before the parked poll did (CI at
	// a694e0b: "h" after 25 s instead of 2010).
	waitHolder(t, c.store, eb.keyOf(idFromClientSession("p")), "")
	parked := pollAsync(t, baseA+"/0/p/xhr") // parks on A
	waitHolder(t, c.store, eb.keyOf(idFromClientSession("p")), a.ID())
	_, body = do(t, "POST", baseB+"/0/p/xhr", "")
	want(t, "poll on B while A holds it", body, `c[2010,"Another connection still open"]`+"\n")

	res, err := b.ReleaseNode(context.Background(), a.ID())
	if err != nil || res.Released != 2 || len(res.Closed) != 1 {
		t.Fatalf("ReleaseNode = %+v, %v; want 2 released, 1 closed", res, err)
	}
	testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if _, closed := recB.counts(); closed != 1 {
			return fmt.Errorf("OnClose on B ran %d times", closed)
		}
		return nil
	})
	do(t, "POST", baseB+"/0/p/xhr_send", `["moved"]`)
	_, body = do(t, "POST", baseB+"/0/p/xhr", "")
	want(t, "poll on B after release", body, `a["moved"]`+"\n")

	// A second cleaner finds nothing; OnClose ran once in all.
	if res, err := a.ReleaseNode(context.Background(), a.ID()); err != nil || res.Released != 0 {
		t.Fatalf("second ReleaseNode = %+v, %v", res, err)
	}
	// A's parked poll finds its lease gone at its next look at the store
	// and ends.
	select {
	case <-parked:
	case <-time.After(5 * time.Second):
		t.Fatal("A's parked poll did not end")
	}
	_, closedA := recA.counts()
	_, closedB := recB.counts()
	if closedA+closedB != 1 {
		t.Fatalf("OnClose ran %d times on A and %d on B; want once in all", closedA, closedB)
	}
}

// TestCloseDrainsReceivers: closing a node (SIGTERM's drain) answers a
// parked poll with a heartbeat, ends a stream cleanly, releases both
// leases without closing the sessions, and closes websockets with 1001.
func TestCloseDrainsReceivers(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	rec := &recorder{}
	n, e, base := c.node(t, rec, Settings{})
	pollKey, streamKey := e.keyOf(idFromClientSession("p")), e.keyOf(idFromClientSession("s"))
	_, body := do(t, "POST", base+"/0/p/xhr", "")
	want(t, "poll open", body, "o\n")
	waitHolder(t, c.store, pollKey, "") // the open poll's
	polled := pollAsync(t, base+"/0/p/xhr")
	_, br := stream(t, "POST", base+"/0/s/xhr_streaming")
	readLine(t, br)
	want(t, "stream open", readLine(t, br), "o\n")
	conn := dialWS(t, base+"/0/w/websocket")
	want(t, "ws open", readWS(t, conn), "o")
	testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if st := n.Stats(); st.SessionsActive != 3 {
			return fmt.Errorf("%d receivers live, want 3", st.SessionsActive)
		}
		return nil
	})

	// The client reads on, as a real one does: the websocket close
	// handshake waits for its answer.
	type wsEnd struct {
		frame string
		code  websocket.StatusCode
	}
	wsEnded := make(chan wsEnd, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, b, _ := conn.Read(ctx)
		_, _, err := conn.Read(ctx)
		wsEnded <- wsEnd{string(b), websocket.CloseStatus(err)}
	}()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wantPolled(t, "parked poll answered", polled, 10*time.Second, "h\n")
	wantStreamEnd(t, "stream", br)
	end := <-wsEnded
	want(t, "ws close frame", end.frame, `c[1001,"Going away"]`)
	want(t, "ws close code", end.code, websocket.StatusGoingAway)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("drain took %v", d)
	}
	for _, key := range []string{pollKey, streamKey} {
		st, err := c.store.Get(context.Background(), key)
		if err != nil || st.State != store.StateOpen || st.ReceiverNode != "" {
			t.Fatalf("%s after drain: %+v, %v; want open and released", key, st, err)
		}
	}
	rec.waitClosed(t, 1) // the websocket
}

// TestNothingReadsTheStoreAfterClose: once Node.Close has returned, none
// of the node's receivers, timers or loops touches the store, whatever was
// live at the close (a parked poll, a stream, a websocket), with every
// timer (heartbeat, re-check, lease renewal) running every few
// milliseconds. (A receiver that detached late, just after Close
// returned, would be seen only when it loses that race; the timers that
// keep firing are seen every time.)
func TestNothingReadsTheStoreAfterClose(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	ks := &killableStore{Store: c.store}
	quick := func(cfg *NodeConfig) {
		cfg.Store = ks
		cfg.RecheckInterval = 10 * time.Millisecond
		cfg.WebsocketRecheckInterval = 10 * time.Millisecond
		cfg.LeaseTTL = 60 * time.Millisecond // renewals every 20 ms
	}
	n, _, base := c.node(t, &recorder{}, Settings{HeartbeatDelay: 15 * time.Millisecond}, quick)
	_, body := do(t, "POST", base+"/0/p/xhr", "")
	want(t, "poll open", body, "o\n")
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		do(t, "POST", base+"/0/p/xhr", "")
	}()
	resp, br := stream(t, "POST", base+"/0/s/xhr_streaming")
	defer resp.Body.Close()
	readLine(t, br) // the prelude
	want(t, "stream open", readLine(t, br), "o\n")
	conn := dialWS(t, base+"/0/w/websocket")
	want(t, "ws open", readWS(t, conn), "o")
	go func() {
		for {
			if _, _, err := conn.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond) // heartbeats, re-checks and renewals run

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ks.dead.Store(true)
	<-polled
	time.Sleep(100 * time.Millisecond) // ten re-check intervals, five renewals
	if late := ks.late.Load(); late != 0 {
		t.Fatalf("%d store calls after Node.Close returned", late)
	}
}

// killableStore is the shared store as seen by one node: once killed,
// nothing that node does reaches it any more, as after a SIGKILL. It has
// the capabilities of the memory store it wraps.
type killableStore struct {
	store.Store
	dead atomic.Bool
	// late counts the calls made once dead.
	late atomic.Int64
	// dieOnDrain kills the node right after a Drain took messages: it
	// dies before writing them.
	dieOnDrain atomic.Bool
	// dieOnClosedTake kills the node right after an Attach took messages
	// of a closed session: it dies before writing them.
	dieOnClosedTake atomic.Bool
	// freezeAfterCommit stops the node right after a Commit that took
	// messages off the store: the caller never gets on (its process is
	// stopped) until thaw is closed, and frozen is closed.
	freezeAfterCommit atomic.Bool
	frozen, thaw      chan struct{}
}

var errKilled = errors.New("test: node killed")

func (s *killableStore) isDead() bool {
	if s.dead.Load() {
		s.late.Add(1)
		return true
	}
	return false
}

func (s *killableStore) Create(ctx context.Context, id string, opts store.CreateOptions) (bool, error) {
	if s.isDead() {
		return false, errKilled
	}
	return s.Store.Create(ctx, id, opts)
}

func (s *killableStore) Get(ctx context.Context, id string) (store.Session, error) {
	if s.isDead() {
		return store.Session{}, errKilled
	}
	return s.Store.Get(ctx, id)
}

func (s *killableStore) Attach(ctx context.Context, id string, l store.Lease, opts ...store.DrainOption) (store.AttachResult, error) {
	if s.isDead() {
		return store.AttachResult{}, errKilled
	}
	res, err := s.Store.Attach(ctx, id, l, opts...)
	if err == nil && res.Status == store.AttachClosed && len(res.Messages) > 0 && s.dieOnClosedTake.Load() {
		s.dead.Store(true)
		return store.AttachResult{}, errKilled
	}
	return res, err
}

func (s *killableStore) Renew(ctx context.Context, id string, l store.Lease) error {
	if s.isDead() {
		return errKilled
	}
	return s.Store.Renew(ctx, id, l)
}

func (s *killableStore) Detach(ctx context.Context, id, token string) error {
	if s.isDead() {
		return errKilled
	}
	return s.Store.Detach(ctx, id, token)
}

func (s *killableStore) Append(ctx context.Context, id string, msgs []string, limits store.QueueLimits) (store.AppendResult, error) {
	if s.isDead() {
		return store.AppendResult{}, errKilled
	}
	return s.Store.Append(ctx, id, msgs, limits)
}

func (s *killableStore) Drain(ctx context.Context, id, token string, opts ...store.DrainOption) (store.DrainResult, error) {
	if s.isDead() {
		return store.DrainResult{}, errKilled
	}
	res, err := s.Store.Drain(ctx, id, token, opts...)
	if err == nil && len(res.Messages) > 0 && s.dieOnDrain.Load() {
		s.dead.Store(true)
		return store.DrainResult{}, errKilled
	}
	return res, err
}

func (s *killableStore) Commit(ctx context.Context, id, token string, detach bool) error {
	if s.isDead() {
		return errKilled
	}
	err := s.Store.(store.Committer).Commit(ctx, id, token, detach)
	if err == nil && s.freezeAfterCommit.Load() {
		if st, _ := s.Store.Get(ctx, id); st.ReceiverNode == "" {
			// The commit released the lease: it was a poll's, whose
			// messages it took off the store.
			s.dead.Store(true)
			close(s.frozen)
			<-s.thaw
			return errKilled
		}
	}
	return err
}

func (s *killableStore) TakeOver(ctx context.Context, id, from string, l store.Lease, opts ...store.DrainOption) (store.AttachResult, error) {
	if s.isDead() {
		return store.AttachResult{}, errKilled
	}
	return s.Store.(store.LeaseTaker).TakeOver(ctx, id, from, l, opts...)
}

func (s *killableStore) Close(ctx context.Context, id string, code int, reason string) (bool, error) {
	if s.isDead() {
		return false, errKilled
	}
	return s.Store.Close(ctx, id, code, reason)
}

func (s *killableStore) Reap(ctx context.Context, now time.Time, limit int) ([]string, error) {
	if s.isDead() {
		return nil, errKilled
	}
	return s.Store.Reap(ctx, now, limit)
}

func (s *killableStore) SetAttr(ctx context.Context, id, key, value string) error {
	if s.isDead() {
		return errKilled
	}
	return s.Store.SetAttr(ctx, id, key, value)
}

func (s *killableStore) Attr(ctx context.Context, id, key string) (string, bool, error) {
	if s.isDead() {
		return "", false, errKilled
	}
	return s.Store.Attr(ctx, id, key)
}

// parkedPoll is two nodes on one store, A's store killable, with session
// "s" opened on A and (parkPollOnA) its next poll parked there.
type parkedPoll struct {
	a         *Node
	ks        *killableStore // A's store
	eB        *Endpoint
	baseA     string
	baseB     string
	abortPoll context.CancelFunc // ends the parked poll's request
	// polled gets the parked poll's response body, "" if it got none.
	polled <-chan string
	// cutA closes A's connections, as its kernel does when it is killed.
	cutA func()
}

// openOnA is parkPollOnA without the parked poll: the session is
// between two polls.
func openOnA(t *testing.T) parkedPoll {
	t.Helper()
	c := newCluster(t)
	ks := &killableStore{Store: c.store, frozen: make(chan struct{}), thaw: make(chan struct{})}
	settings := Settings{HeartbeatDelay: time.Minute}
	a, err := NewNode(NodeConfig{Store: ks, Bus: c.bus, ReapInterval: 20 * time.Millisecond, HolderTimeout: testHolderTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.NewEndpoint(&recorder{}, Settings{Prefix: "/t", HeartbeatDelay: settings.HeartbeatDelay}); err != nil {
		t.Fatal(err)
	}
	srvA := httptest.NewServer(a.Handler(nil))
	t.Cleanup(func() {
		close(ks.thaw) // a frozen node's calls return, so that it can close
		srvA.CloseClientConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Errorf("node A close: %v", err)
		}
		srvA.Close()
	})
	baseA := srvA.URL + "/t"
	_, eB, baseB := c.node(t, &recorder{}, settings)
	key := eB.keyOf(idFromClientSession("s"))
	_, body := do(t, "POST", baseA+"/0/s/xhr", "")
	want(t, "open on A", body, "o\n")
	waitHolder(t, c.store, key, "") // the open poll's, which may outlive its response
	cutA := func() {
		a.stopListen()
		srvA.CloseClientConnections()
	}
	return parkedPoll{a: a, ks: ks, eB: eB, baseA: baseA, baseB: baseB, abortPoll: func() {}, cutA: cutA}
}

func parkPollOnA(t *testing.T) parkedPoll {
	t.Helper()
	p := openOnA(t)
	pollCtx, abortPoll := context.WithCancel(context.Background())
	t.Cleanup(abortPoll)
	p.abortPoll = abortPoll
	p.polled = pollAsyncCtx(pollCtx, t, p.baseA+"/0/s/xhr")
	waitHolder(t, p.ks.Store, p.eB.keyOf(idFromClientSession("s")), p.a.ID())
	return p
}

// TestTakeOverFromDeadHolder: a node dies (no store, no bus, no cleanup)
// while it holds a parked poll. The client polls again on a survivor: it
// gets what was sent meanwhile within HolderTimeout, never 2010, long
// before the lease's TTL or membership would free it. While the holder
// lived, the same second poll got 2010.
func TestTakeOverFromDeadHolder(t *testing.T) {
	t.Parallel()
	p := parkPollOnA(t)
	a, ks, baseB := p.a, p.ks, p.baseB
	_, body := do(t, "POST", baseB+"/0/s/xhr", "")
	want(t, "second poll while A lives", body, "c[2010,\"Another connection still open\"]\n")

	// A dies: its store calls fail, its bus listener is gone, nothing
	// detaches its poll.
	ks.dead.Store(true)
	a.stopListen()
	resp, _ := do(t, "POST", baseB+"/0/s/xhr_send", `["after"]`)
	want(t, "send on B", resp.StatusCode, http.StatusNoContent)
	start := time.Now()
	_, body = do(t, "POST", baseB+"/0/s/xhr", "")
	took := time.Since(start)
	want(t, "poll on B after A died", body, `a["after"]`+"\n")
	if limit := 3 * testHolderTimeout; took > limit {
		t.Fatalf("take-over took %v, more than %v", took, limit)
	}
	t.Logf("poll on the survivor served %v after it began", took.Round(time.Millisecond))
	// The session goes on from B.
	do(t, "POST", baseB+"/0/s/xhr_send", `["next"]`)
	_, body = do(t, "POST", baseB+"/0/s/xhr", "")
	want(t, "poll after take-over", body, `a["next"]`+"\n") // "after" went once
}

// killAfterDrain has B send "taken" to p's session and A, holding its
// parked poll, take it off the queue and die before writing it; the
// poll's client goes, as the balancer cut it.
func killAfterDrain(t *testing.T, p parkedPoll) {
	t.Helper()
	p.ks.dieOnDrain.Store(true)
	resp, _ := do(t, "POST", p.baseB+"/0/s/xhr_send", `["taken"]`)
	want(t, "send on B", resp.StatusCode, http.StatusNoContent)
	testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if !p.ks.dead.Load() {
			return errors.New("A has not drained yet")
		}
		return nil
	})
	p.a.stopListen()
	p.abortPoll()
}

// TestDrainedMessagesSurviveHolderDeath: the node holding a parked poll
// takes a message off the queue and dies before writing it. The client's
// poll on a survivor gets it (the store kept it in flight), exactly once.
func TestDrainedMessagesSurviveHolderDeath(t *testing.T) {
	t.Parallel()
	p := parkPollOnA(t)
	killAfterDrain(t, p)
	_, body := do(t, "POST", p.baseB+"/0/s/xhr", "")
	want(t, "poll on B after A died holding the message", body, `a["taken"]`+"\n")
	do(t, "POST", p.baseB+"/0/s/xhr_send", `["next"]`)
	_, body = do(t, "POST", p.baseB+"/0/s/xhr", "")
	want(t, "next poll: no duplicate", body, `a["next"]`+"\n")
}

// TestClosedSessionDrainedMessagesSurviveHolderDeath: as
// TestDrainedMessagesSurviveHolderDeath, and then the session closes
// (from B: its handler's last reply, then its close). The client's poll
// on B gets the message A held in flight, then the close frame: beside
// A's live lease the store holds it back (AttachResult.HeldBack), and B
// takes the silent holder's lease over. It used to get the close alone:
// only what was queued counted as held back, not what was in flight.
func TestClosedSessionDrainedMessagesSurviveHolderDeath(t *testing.T) {
	t.Parallel()
	p := parkPollOnA(t)
	killAfterDrain(t, p)
	closeOnB(t, p)
	wantThenClosed(t, p, `a["taken"]`)
}

// closeOnB closes p's session from B, sending it msgs first.
func closeOnB(t *testing.T, p parkedPoll, msgs ...string) {
	t.Helper()
	sess := p.eB.Session(idFromClientSession("s"))
	if err := sess.Send(msgs...); err != nil {
		t.Fatal(err)
	}
	if err := sess.Close(4008, "Policy violation"); err != nil {
		t.Fatal(err)
	}
}

// wantThenClosed wants the client's next poll, on B, to get frame (what
// A took and died with), and the one after the close frame alone.
func wantThenClosed(t *testing.T, p parkedPoll, frame string) {
	t.Helper()
	_, body := do(t, "POST", p.baseB+"/0/s/xhr", "")
	want(t, "poll on B after A died holding the message", body, frame+"\n")
	_, body = do(t, "POST", p.baseB+"/0/s/xhr", "")
	want(t, "next poll: no duplicate", body, `c[4008,"Policy violation"]`+"\n")
}

// TestClosedSessionPollSurvivesHolderDeath: a session's handler sends
// its last message and closes it between two polls; the next poll, on A,
// takes the message, and A dies before writing it (the balancer sends
// that poll again elsewhere: it got no byte). The poll on B gets the
// message, then the close frame: A's take kept it in flight, under a
// lease B takes over from the silent A. It used to get the close alone:
// a closed session's queue was taken for good, and lost with A.
func TestClosedSessionPollSurvivesHolderDeath(t *testing.T) {
	t.Parallel()
	p := openOnA(t)
	closeOnB(t, p, "bye")
	p.ks.dieOnClosedTake.Store(true)
	do(t, "POST", p.baseA+"/0/s/xhr", "") // A dies: its answer does not count
	if !p.ks.dead.Load() {
		t.Fatal("A's poll took nothing")
	}
	p.cutA()
	wantThenClosed(t, p, `a["bye"]`)
}

// TestAnsweredPollSurvivesHolderDeath: the node holding a parked poll
// takes a message off the queue, writes it, commits it, and dies right
// after the commit (its process stops: killableStore.freezeAfterCommit;
// then its kernel closes its connections). The client has the message
// all the same, exactly once: the poll's response left the node before
// its commit. (With the commit first, the response left only after it,
// and a node killed in between had taken the message off the store for
// nothing.)
func TestAnsweredPollSurvivesHolderDeath(t *testing.T) {
	t.Parallel()
	p := parkPollOnA(t)
	p.ks.freezeAfterCommit.Store(true)
	resp, _ := do(t, "POST", p.baseB+"/0/s/xhr_send", `["taken"]`)
	want(t, "send on B", resp.StatusCode, http.StatusNoContent)
	select {
	case <-p.ks.frozen:
	case <-time.After(5 * time.Second):
		t.Fatal("A never committed the message")
	}
	p.cutA()
	got := <-p.polled
	// The client polls again on a survivor (as HAProxy does after a
	// connection cut before any response byte).
	do(t, "POST", p.baseB+"/0/s/xhr_send", `["next"]`)
	_, body := do(t, "POST", p.baseB+"/0/s/xhr", "")
	want(t, "what the client got", got+body, `a["taken"]`+"\n"+`a["next"]`+"\n")
}

// heldCommits is the memory store whose commits wait, while hold is set,
// until release is closed.
type heldCommits struct {
	*store.Memory
	hold    atomic.Bool
	release chan struct{}
}

// holdCommits wraps mem so that its commits wait while hold is set, until
// release (safe to call more than once).
func holdCommits(mem *store.Memory) (*heldCommits, func()) {
	h := &heldCommits{Memory: mem, release: make(chan struct{})}
	var once sync.Once
	return h, func() { once.Do(func() { h.hold.Store(false); close(h.release) }) }
}

func (h *heldCommits) wait() {
	if h.hold.Load() {
		<-h.release
	}
}

func (h *heldCommits) Commit(ctx context.Context, id, token string, detach bool) error {
	h.wait()
	return h.Memory.Commit(ctx, id, token, detach)
}

func (h *heldCommits) CommitHandOff(ctx context.Context, id, token string, batch uint64, detach bool) error {
	h.wait()
	return h.Memory.CommitHandOff(ctx, id, token, batch, detach)
}

// heldOpTimeout bounds the store calls of nodes whose commits are held:
// the second poll's wait for the commit (wantUnpolled's 2 ×
// testHolderTimeout, then the release) is one call, and with the default
// 5 s it had 1 s left for its attach after the release, which a loaded
// machine used up ("Session store unavailable", 1 run in 10 of 4 tests).
const heldOpTimeout = 5 * testHolderTimeout

// waitUnheld waits until no receiver holds session sid of endpoint "/t":
// the poll before commits after its answer, and that commit must not be
// the one held (the next poll would wait for it to the end).
func waitUnheld(t *testing.T, st store.Store, sid string) {
	t.Helper()
	testenv.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if s, err := st.Get(context.Background(), "/t/"+idFromClientSession(sid)); err != nil || s.ReceiverNode != "" {
			return fmt.Errorf("session = %+v, %v; want no receiver", s, err)
		}
		return nil
	})
}

// heldNodes starts node A, serving h, and node B (A itself when
// sameNode) on a memory store whose commits wait while held.hold is set,
// until release (holdCommits), and opens session s1 on A.
func heldNodes(t *testing.T, h Handler, sameNode bool) (held *heldCommits, release func(), baseA, baseB string) {
	t.Helper()
	held, release = holdCommits(store.NewMemory())
	c := newCluster(t)
	useHeld := func(cfg *NodeConfig) { cfg.Store = held; cfg.OpTimeout = heldOpTimeout }
	_, _, baseA = c.node(t, h, Settings{}, useHeld)
	baseB = baseA
	if !sameNode {
		_, _, baseB = c.node(t, &recorder{}, Settings{}, useHeld)
	}
	_, body := do(t, "POST", baseA+"/000/s1/xhr", "")
	want(t, "open", body, "o\n")
	return held, release, baseA, baseB
}

// answerWhileHeld holds held's commits from now on (until release) and
// wants the poll of url answered with body: its commit waits.
func answerWhileHeld(t *testing.T, held *heldCommits, release func(), url, body string) {
	t.Helper()
	held.hold.Store(true)
	t.Cleanup(release) // before the nodes close: they wait for the commit
	want(t, "poll", <-pollAsync(t, url), body)
}

// pollWaitsForCommit polls url while a poll before it commits (held):
// it wants the new poll to wait for that commit, longer than busyGrace
// and than HolderTimeout (the holder is asked again), then releases the
// commit and returns where the new poll's answer arrives.
func pollWaitsForCommit(t *testing.T, url string, release func()) <-chan string {
	t.Helper()
	second := pollAsync(t, url)
	wantUnpolled(t, "second poll while the first committed", second, 2*testHolderTimeout)
	release()
	return second
}

// pollAgainWhileCommitting: a poll is answered while its commit waits;
// its client polls again, on the same node or another (second), and must
// not get 2010: the new poll waits for the commit (longer than busyGrace
// and than HolderTimeout, so the holder is asked again), then serves.
func pollAgainWhileCommitting(t *testing.T, sameNode bool) {
	held, release, baseA, baseB := heldNodes(t, &recorder{}, sameNode)
	do(t, "POST", baseA+"/000/s1/xhr_send", `["a"]`)
	waitUnheld(t, held, "s1")

	answerWhileHeld(t, held, release, baseA+"/000/s1/xhr", `a["a"]`+"\n")
	second := pollWaitsForCommit(t, baseB+"/000/s1/xhr", release)
	do(t, "POST", baseA+"/000/s1/xhr_send", `["b"]`)
	wantPolled(t, "second poll", second, 5*time.Second, `a["b"]`+"\n")
}

// TestNodeBoundStorePollCommitsFirst: on a store bound to its one node
// (store.NodeBound: the node program without --redis) a poll commits what
// it took before its answer leaves, as nothing outlives the node; the
// answer waits for the commit. (With a store that outlives the node,
// pollAgainWhileCommitting's first poll is answered while its commit
// waits.)
func TestNodeBoundStorePollCommitsFirst(t *testing.T) {
	t.Parallel()
	held, release := holdCommits(store.NewMemoryWithConfig(store.MemoryConfig{NodeBound: true}))
	c := newCluster(t)
	_, _, base := c.node(t, &recorder{}, Settings{}, func(cfg *NodeConfig) { cfg.Store = held })
	t.Cleanup(release) // before the node closes: it waits for the commit
	_, body := do(t, "POST", base+"/000/s1/xhr", "")
	want(t, "open", body, "o\n")
	do(t, "POST", base+"/000/s1/xhr_send", `["a"]`)
	held.hold.Store(true)
	poll := pollAsync(t, base+"/000/s1/xhr")
	wantUnpolled(t, "poll before its commit", poll, 300*time.Millisecond)
	release()
	wantPolled(t, "poll", poll, 5*time.Second, `a["a"]`+"\n")
}

// closeWhileCommitting: a poll is answered while its commit waits, and
// the session gets a message and closes; its client polls again, on the
// same node or another, and must get that message before the close frame,
// not the close alone (which lost it): the new poll waits for the commit.
func closeWhileCommitting(t *testing.T, sameNode bool) {
	rec, sessions := openedSessions()
	held, release, baseA, baseB := heldNodes(t, rec, sameNode)
	sess := <-sessions
	if err := sess.Send("a"); err != nil {
		t.Fatal(err)
	}
	waitUnheld(t, held, "s1")

	answerWhileHeld(t, held, release, baseA+"/000/s1/xhr", `a["a"]`+"\n")
	if err := sess.Send("b"); err != nil {
		t.Fatal(err)
	}
	if err := sess.Close(4008, "Policy violation"); err != nil {
		t.Fatal(err)
	}
	second := pollWaitsForCommit(t, baseB+"/000/s1/xhr", release)
	wantPolled(t, "second poll", second, 5*time.Second, `a["b"]`+"\n")
	_, body := do(t, "POST", baseB+"/000/s1/xhr", "")
	want(t, "third poll", body, `c[4008,"Policy violation"]`+"\n")
}

// closedPollWhileCommitting: a poll of a closed session takes what was
// queued before the close and answers it while its commit waits; its
// client polls again, on the same node or another, and must get the
// close frame alone once that commit is done, not the messages again
// (they were held in flight: the new poll waits for the commit).
func closedPollWhileCommitting(t *testing.T, sameNode bool) {
	rec, sessions := openedSessions()
	held, release, baseA, baseB := heldNodes(t, rec, sameNode)
	sess := <-sessions
	waitUnheld(t, held, "s1")
	if err := sess.Send("bye"); err != nil {
		t.Fatal(err)
	}
	if err := sess.Close(4008, "Policy violation"); err != nil {
		t.Fatal(err)
	}
	answerWhileHeld(t, held, release, baseA+"/000/s1/xhr", `a["bye"]`+"\n")
	second := pollWaitsForCommit(t, baseB+"/000/s1/xhr", release)
	wantPolled(t, "second poll", second, 10*time.Second, `c[4008,"Policy violation"]`+"\n")
}

// onSameAndOtherNode runs f in two parallel subtests: the client's next
// request on the same node (sameNode), and on another.
func onSameAndOtherNode(t *testing.T, f func(t *testing.T, sameNode bool)) {
	t.Parallel()
	t.Run("same node", func(t *testing.T) { t.Parallel(); f(t, true) })
	t.Run("other node", func(t *testing.T) { t.Parallel(); f(t, false) })
}

func TestClosedPollWhileCommitting(t *testing.T) { onSameAndOtherNode(t, closedPollWhileCommitting) }

func TestCloseWhileCommitting(t *testing.T) { onSameAndOtherNode(t, closeWhileCommitting) }

func TestPollAgainWhileCommitting(t *testing.T) { onSameAndOtherNode(t, pollAgainWhileCommitting) }

// TestEndpointForPath: a path goes to the endpoint of its longest prefix
// that ends at a slash or at its end, whatever order they were mounted in.
func TestEndpointForPath(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	n, a, _ := c.node(t, HandlerFuncs{}, Settings{Prefix: "/a"})
	ab, err := n.NewEndpoint(HandlerFuncs{}, Settings{Prefix: "/a/b"})
	if err != nil {
		t.Fatal(err)
	}
	x, err := n.NewEndpoint(HandlerFuncs{}, Settings{Prefix: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]*Endpoint{
		"/a": a, "/a/": a, "/a/info": a, "/a/bc/info": a, "/a/b": ab, "/a/b/info": ab,
		"/a/b/1/2/xhr": ab, "/x/1/2/xhr_send": x, "/ab": nil, "/": nil, "": nil, "/y/a": nil,
	} {
		if got := n.endpointForPath(path); got != want {
			t.Errorf("%q: endpoint %v, want %v", path, got, want)
		}
	}
	if n.Endpoint("/a/b") != ab || n.Endpoint("/a/b/") != nil {
		t.Error("Endpoint by prefix: wrong endpoint")
	}
}
