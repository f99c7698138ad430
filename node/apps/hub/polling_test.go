package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// TestClusterRecoveryPolling: an xhr-polling session whose requests each
// land on another node subscribes with since; the next poll brings the
// reply and the missed messages, each once (their order against the
// reply is not fixed on HTTP transports, see docs/hub-protocol.md).
func TestClusterRecoveryPolling(t *testing.T) {
	t.Parallel()
	hubs := startHubs(t, clusterBackends(t), 3, Config{})
	ctx := context.Background()
	var offs []uint64
	for i := range 4 {
		off, err := hubs[i%3].Publish(ctx, "room", fmt.Appendf(nil, `{"n":%d}`, i))
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	sid := "/0/poller/"
	if got := nodetest.Post(t, hubs[0].base+sid+"xhr", ""); got != "o\n" {
		t.Fatalf("open: %q", got)
	}
	msg, _ := json.Marshal([]string{fmt.Sprintf(`{"data_type":"subscribe","id":1,"data":{"channel":"room","since":%d}}`, offs[0])})
	nodetest.Post(t, hubs[1].base+sid+"xhr_send", string(msg))
	var got []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 4 && time.Now().Before(deadline) {
		f := sockjstest.ParseFrame(t, nodetest.Post(t, hubs[2].base+sid+"xhr", ""))
		for _, m := range f.Msgs {
			var v map[string]any
			if err := json.Unmarshal([]byte(m), &v); err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
	}
	n := 1
	for _, m := range got {
		if m["data_type"] == "subscribe" {
			if d := data(m); d["recovered"] != true || d["offset"] != float64(offs[3]) {
				t.Fatalf("reply %v", m)
			}
			continue
		}
		if m["n"] != float64(n) || m["offset"] != float64(offs[n]) {
			t.Fatalf("message %v, want n=%d (all: %v)", m, n, got)
		}
		n++
	}
	if n != 4 || len(got) != 4 {
		t.Fatalf("got %v, want the reply and messages 1..3 once", got)
	}
}

// TestAuthTimeoutOnAnyNode: the node that opened a session (and armed its
// auth timer) is gone; the session's next message, on another node, past
// the auth deadline closes it with 4001.
func TestAuthTimeoutOnAnyNode(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	hubs := startHubs(t, clusterBackends(t), 2, Config{Verifier: testVerifier{}, File: File{AuthTimeout: Duration(timeout)}})
	sid := "/0/late/"
	start := time.Now()
	if got := nodetest.Post(t, hubs[0].base+sid+"xhr", ""); got != "o\n" {
		t.Fatalf("open: %q", got)
	}
	hubs[0].Close() // its timers die with it
	if got := nodetest.Post(t, hubs[1].base+sid+"xhr", ""); !strings.Contains(got, "request_auth") {
		t.Fatalf("first poll: %q", got)
	}
	// A ping every 100 ms (well within the rate limit) until the close.
	var closed time.Duration
	testenv.CheckFor(t, timeout+10*time.Second, 100*time.Millisecond, func() error {
		nodetest.Post(t, hubs[1].base+sid+"xhr_send", `["{\"data_type\":\"ping\",\"id\":1,\"data\":{}}"]`)
		got := nodetest.Post(t, hubs[1].base+sid+"xhr", "")
		if got == `c[4001,"Not authenticated"]`+"\n" {
			closed = time.Since(start)
			return nil
		}
		if !strings.Contains(got, "Not authenticated") {
			t.Fatalf("poll before the deadline: %q", got)
		}
		return fmt.Errorf("not closed after %v: %q", time.Since(start), got)
	})
	if closed < timeout {
		t.Fatalf("closed after %v, before the auth timeout %v", closed, timeout)
	}
}
