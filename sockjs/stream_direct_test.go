package sockjs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// TestStreamDirectWritesSlowClient: channel messages written to idle
// streams by the fan-out itself (stream_direct.go) to a client that stops
// reading, until its socket takes only parts of them and then nothing,
// all arrive once, in order, in a response that still parses (chunked
// for xhr-streaming, events for eventsource), after what the engine
// writes in between.
func TestStreamDirectWritesSlowClient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		transport, method string
		prelude           int // lines before the open frame
		message           func(line string) (string, bool)
	}{
		{"xhr_streaming", "POST", 1, func(line string) (string, bool) { return line, true }},
		{"eventsource", "GET", 1, func(line string) (string, bool) {
			m, ok := strings.CutPrefix(line, "data: ")
			return m, ok
		}},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			t.Parallel()
			const msgs, size = 800, 8 << 10
			cc := newChannelCluster(t, 1, Settings{ResponseLimit: 1 << 30, MaxQueuedMessages: 2 * msgs}, ChannelConfig{Pattern: "room"}, joinRoom)
			n, e := cc.nodes[0], cc.eps[0]
			br := slowStream(t, tc.method, cc.bases[0]+"/0/s/"+tc.transport)
			lines := func() string {
				t.Helper()
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						t.Fatalf("read: %v (got %q)", err, line)
					}
					line = strings.TrimRight(line, "\r\n")
					if m, ok := tc.message(line); ok {
						return m
					}
				}
			}
			for range tc.prelude {
				br.ReadString('\n')
			}
			want(t, "open", lines(), "o")
			if nonblockingSupported {
				waitParked(t, n, e.keyOf(idFromClientSession("s")))
			}

			pad := strings.Repeat("x", size)
			for i := range msgs {
				if err := e.Publish(context.Background(), "room", fmt.Sprintf("%d %s", i, pad)); err != nil {
					t.Fatal(err)
				}
			}
			// Frames hold one message or, from the engine, several.
			for next := 0; next < msgs; {
				frame := lines()
				var got []string
				if err := json.Unmarshal([]byte(strings.TrimPrefix(frame, "a")), &got); err != nil || frame[0] != 'a' {
					t.Fatalf("frame %.40q…: %v", frame, err)
				}
				for _, m := range got {
					if want := fmt.Sprintf("%d %s", next, pad); m != want {
						t.Fatalf("message %d: got %.20q… (%d bytes), want %.20q…", next, m, len(m), want)
					}
					next++
				}
			}
		})
	}
}

// TestStreamDirectWritesEndAtLimit: a direct write that completes the
// response limit ends the response cleanly, and the next stream of the
// session goes on from there: what was published in between once, then
// what follows.
func TestStreamDirectWritesEndAtLimit(t *testing.T) {
	t.Parallel()
	cc := newChannelCluster(t, 1, Settings{ResponseLimit: 300}, ChannelConfig{Pattern: "room"}, joinRoom)
	n, e, u := cc.nodes[0], cc.eps[0], cc.bases[0]+"/0/s/xhr_streaming"
	key := e.keyOf(idFromClientSession("s"))
	pad := strings.Repeat("x", 100)
	publish := func(i int) string {
		t.Helper()
		m := fmt.Sprintf("%d %s", i, pad)
		if err := e.Publish(context.Background(), "room", m); err != nil {
			t.Fatal(err)
		}
		return `a["` + m + `"]` + "\n"
	}
	_, br := stream(t, "POST", u)
	readLine(t, br) // the prelude
	want(t, "open", readLine(t, br), "o\n")
	// Three frames of 108 bytes after "o\n" pass 300.
	for i := range 3 {
		if nonblockingSupported {
			waitParked(t, n, key)
		}
		sent := publish(i)
		want(t, fmt.Sprint("message ", i), readLine(t, br), sent)
	}
	wantStreamEnd(t, "after the limit", br)
	waitHolder(t, cc.store, key, "") // the first stream's
	between := publish(3)

	_, br = stream(t, "POST", u)
	readLine(t, br) // the prelude
	want(t, "published between the streams", readLine(t, br), between)
	if nonblockingSupported {
		waitParked(t, n, key)
	}
	sent := publish(4)
	want(t, "message 4", readLine(t, br), sent)
}

// TestStreamDirectWritesUnchunked: a response net/http does not chunk (to
// an HTTP/1.0 client, or one that asked for HeaderStreamEnd "close", as
// the balancer does) gets its direct writes unchunked too.
func TestStreamDirectWritesUnchunked(t *testing.T) {
	t.Parallel()
	cc := newChannelCluster(t, 1, Settings{}, ChannelConfig{Pattern: "room"}, joinRoom)
	n, e := cc.nodes[0], cc.eps[0]
	base, err := url.Parse(cc.bases[0])
	if err != nil {
		t.Fatal(err)
	}
	for i, request := range []string{
		"GET %s/eventsource HTTP/1.0\r\n\r\n",
		"GET %s/eventsource HTTP/1.1\r\nHost: x\r\n" + HeaderStreamEnd + ": close\r\n\r\n",
	} {
		sid := fmt.Sprint("s", i)
		conn, err := net.Dial("tcp", base.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, request, base.Path+"/0/"+sid)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.TransferEncoding) > 0 {
			t.Fatalf("%q: transfer encoding %q", request, resp.TransferEncoding)
		}
		// The raw bytes: the prelude, the open frame, then what follows.
		want(t, "prelude and open", readN(t, br, len("\r\ndata: o\r\n\r\n")), "\r\ndata: o\r\n\r\n")
		if nonblockingSupported {
			waitParked(t, n, e.keyOf(idFromClientSession(sid)))
		}
		if err := e.Publish(context.Background(), "room", "hi"); err != nil {
			t.Fatal(err)
		}
		event := "data: " + `a["hi"]` + "\r\n\r\n"
		want(t, fmt.Sprintf("%q: event", request), readN(t, br, len(event)), event)
	}
}

// readN reads n bytes from br.
func readN(t *testing.T, br *bufio.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		t.Fatalf("read: %v (got %q)", err, b)
	}
	return string(b)
}

// slowStream opens a stream with a small receive buffer, so that the
// server's socket fills soon while the test does not read, and returns
// its body.
func slowStream(t *testing.T, method, url string) *bufio.Reader {
	t.Helper()
	// Before the connect: a buffer shrunk after it stalls the transfer.
	smallBuffer := func(_, _ string, c syscall.RawConn) (err error) {
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); cerr != nil {
			return cerr
		}
		return err
	}
	d := &net.Dialer{Control: smallBuffer}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return bufio.NewReader(resp.Body)
}

// waitParked waits until the stream of key on n is idle with direct
// writes on.
func waitParked(t *testing.T, n *Node, key string) {
	t.Helper()
	testenv.CheckFor(t, 5*time.Second, 2*time.Millisecond, func() error {
		sh := n.shard(key)
		sh.mu.RLock()
		var chans *receiverChannels
		for _, lr := range sh.m[key] {
			chans = lr.chans
		}
		sh.mu.RUnlock()
		if chans == nil {
			return fmt.Errorf("no receiver with channels")
		}
		chans.mu.Lock()
		defer chans.mu.Unlock()
		if !chans.parked {
			return fmt.Errorf("stream not parked for direct writes")
		}
		return nil
	})
}
