package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// slowConsumers: sessions that never read what they are sent, while their
// own messages pour in: websockets that send 1,000 frames of 4 KiB and
// never read the echoes, and xhr-streaming sessions whose stream is never
// read while 200 sends of 4 KiB each go to them. The load's sessions must
// not notice; each node's memory is reported before, at the peak and after.
func slowConsumers(t *testing.T, c *cluster, s settings) {
	const (
		slowWS, slowStreams = 20, 20
		frame               = 4 << 10
	)
	before := nodesRSS(c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	payload := `["` + strings.Repeat("x", frame) + `"]`
	var wg sync.WaitGroup
	var wsSent, streamSent, refused atomic.Int64
	for i := range slowWS {
		wg.Go(func() {
			conn, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://%s/echo/000/slowws%d-%d/websocket", c.lb, i, time.Now().UnixNano()), nil)
			if err != nil {
				refused.Add(1)
				return
			}
			defer conn.CloseNow()
			for range 1000 {
				wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
				err := conn.Write(wctx, websocket.MessageText, []byte(payload))
				wcancel()
				if err != nil {
					return // the node stopped reading us (or closed): that is its defence
				}
				wsSent.Add(1)
			}
		})
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for i := range slowStreams {
		wg.Go(func() {
			sid := fmt.Sprintf("slowxs%d-%d", i, time.Now().UnixNano())
			conn, err := net.DialTimeout("tcp", c.lb, 2*time.Second)
			if err != nil {
				refused.Add(1)
				return
			}
			defer conn.Close()
			// Open the stream and never read it.
			fmt.Fprintf(conn, "POST /echo/000/%s/xhr_streaming HTTP/1.1\r\nHost: shoal\r\nContent-Length: 0\r\n\r\n", sid)
			time.Sleep(200 * time.Millisecond)
			for range 200 {
				resp, err := client.Post(fmt.Sprintf("http://%s/echo/000/%s/xhr_send", c.lb, sid), "text/plain", strings.NewReader(payload))
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					return // the session was closed (queue full, too slow): its own loss
				}
				streamSent.Add(1)
			}
			<-ctx.Done()
		})
	}
	peak := maps.Clone(before)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(250 * time.Millisecond):
		}
		for id, v := range nodesRSS(c) {
			peak[id] = max(peak[id], v)
		}
	}
	cancel()
	time.Sleep(2 * time.Second)
	after := nodesRSS(c)
	t.Logf("slow consumers: %d websockets sent %d frames of %d B unread; %d xhr-streaming sessions got %d sends of %d B unread; %d not connected",
		slowWS, wsSent.Load(), frame, slowStreams, streamSent.Load(), frame, refused.Load())
	for _, n := range c.nodes {
		t.Logf("  %s RSS: before %d MiB, peak %d MiB, after %d MiB", n.ID, before[n.ID]>>20, peak[n.ID]>>20, after[n.ID]>>20)
	}
}

func nodesRSS(c *cluster) map[string]int64 {
	m := map[string]int64{}
	for _, n := range c.nodes {
		if v, err := rss(n.Cmd.Process.Pid); err == nil {
			m[n.ID] = v
		}
	}
	return m
}

// malformed: 10,000 bad requests (2,000 in the fast subset) through the
// balancer while the load runs: broken JSON, wrong methods, oversized and
// odd session ids, unknown transports, bad JSONP callbacks, botched
// websocket handshakes, oversized bodies, raw garbage. Every node must
// stay up and answer them with 4xx (or the 500 the SockJS protocol
// prescribes for broken JSON and bad JSONP callbacks), never 502-504, and the load's sessions
// must not notice.
func malformed(t *testing.T, c *cluster, s settings) {
	total := 2000
	if s.full {
		total = 10000
	}
	base := "http://" + c.lb + "/echo"
	// A few real sessions (xhr-polling) to aim broken sends at.
	client := &http.Client{Timeout: 10 * time.Second}
	var live []string
	for i := range 8 {
		sid := fmt.Sprintf("victim%d-%d", i, time.Now().UnixNano())
		resp, err := client.Post(base+"/000/"+sid+"/xhr", "text/plain", nil)
		if err != nil {
			t.Fatalf("open a session to abuse: %v", err)
		}
		resp.Body.Close()
		live = append(live, sid)
	}
	type probe struct {
		kind, method, path, body string
		header                   map[string]string
	}
	long := strings.Repeat("a", 60000)
	huge := `["` + strings.Repeat("y", 2<<20) + `"]`
	bodies := []string{"", "[", "{", `{"a":1}`, `"str"`, `[1,2]`, `["\ud800"]`, "\x00\x01\x02", `["a"`, `[["a"]]`, "null", strings.Repeat("[", 10000)}
	probes := func(r *rand.Rand) probe {
		sid := live[r.IntN(len(live))]
		switch r.IntN(12) {
		case 0:
			return probe{"bad json to a live session", "POST", "/000/" + sid + "/xhr_send", bodies[r.IntN(len(bodies))], nil}
		case 1:
			return probe{"send to an unknown session", "POST", fmt.Sprintf("/000/nosuch%d/xhr_send", r.IntN(1e9)), `["x"]`, nil}
		case 2:
			return probe{"60,000-character session id", "POST", "/000/" + long + "/xhr", "", nil}
		case 3:
			return probe{"session id with dots", "GET", "/000/a.b/eventsource", "", nil}
		case 4:
			return probe{"unknown transport", "POST", fmt.Sprintf("/000/s%d/bogus", r.IntN(1e9)), "", nil}
		case 5:
			return probe{"jsonp without callback", "GET", fmt.Sprintf("/000/s%d/jsonp", r.IntN(1e9)), "", nil}
		case 6:
			return probe{"jsonp with a script for callback", "GET", fmt.Sprintf("/000/s%d/jsonp?c=%%3Cscript%%3E", r.IntN(1e9)), "", nil}
		case 7:
			return probe{"websocket upgrade with a bad key", "GET", fmt.Sprintf("/000/s%d/websocket", r.IntN(1e9)), "",
				map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "bad", "Sec-WebSocket-Version": "7"}}
		case 8:
			return probe{"2 MiB send", "POST", "/000/" + sid + "/xhr_send", huge, nil}
		case 9:
			return probe{"wrong method", []string{"PUT", "DELETE", "PATCH"}[r.IntN(3)], fmt.Sprintf("/000/s%d/xhr", r.IntN(1e9)), "x", nil}
		case 10:
			return probe{"odd paths", "GET", []string{"/../../etc/passwd", "/%00", "/000/%ff%fe/xhr", "/info/../../x", "//////"}[r.IntN(5)], "", nil}
		default:
			return probe{"jsonp_send with a bad form body", "POST", "/000/" + sid + "/jsonp_send", "d=" + bodies[r.IntN(len(bodies))],
				map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}
		}
	}
	protocol500 := map[string]bool{
		"bad json to a live session": true, "jsonp without callback": true,
		"jsonp with a script for callback": true, "jsonp_send with a bad form body": true,
	}
	var mu sync.Mutex
	codes := map[string]map[int]int{}
	var errs atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			hc := &http.Client{Timeout: 10 * time.Second}
			for next.Add(1) <= int64(total) {
				p := probes(r)
				req, err := http.NewRequest(p.method, base+p.path, bytes.NewBufferString(p.body))
				if err != nil {
					req, _ = http.NewRequest(p.method, base+"/000/x/xhr", nil) // a path Go refuses to build
				}
				for k, v := range p.header {
					req.Header.Set(k, v)
				}
				resp, err := hc.Do(req)
				if err != nil {
					// A node may answer an oversized body before reading it
					// and close: the client sees its write fail.
					errs.Add(1)
					mu.Lock()
					if codes[p.kind] == nil {
						codes[p.kind] = map[int]int{}
					}
					codes[p.kind][0]++ // 0: no response read
					mu.Unlock()
					continue
				}
				io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				mu.Lock()
				if codes[p.kind] == nil {
					codes[p.kind] = map[int]int{}
				}
				codes[p.kind][resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	// Raw garbage on a few connections (HAProxy answers it, nodes never see it).
	for range 50 {
		conn, err := net.DialTimeout("tcp", c.lb, 2*time.Second)
		if err != nil {
			continue
		}
		conn.Write([]byte("\x16\x03\x01garbage\r\n\r\n"))
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, conn)
		conn.Close()
	}
	wg.Wait()
	t.Logf("malformed: %d requests in %v, %d transport errors", total, time.Since(start).Round(100*time.Millisecond), errs.Load())
	for _, kind := range slices.Sorted(maps.Keys(codes)) {
		t.Logf("  %-34s %v", kind, codes[kind])
		for code, n := range codes[kind] {
			// The SockJS protocol itself answers 500 to broken JSON, an
			// empty payload and a missing or bad JSONP callback; anything
			// else of 5xx (502, 503, 504 come from HAProxy: a node failed)
			// is a fault.
			if code >= 500 && !(code == 500 && protocol500[kind]) {
				t.Errorf("malformed: %q answered %d %d times", kind, code, n)
			}
		}
	}
	for _, n := range c.nodes {
		if n.Exited() {
			t.Errorf("malformed: node %s died", n.ID)
		}
	}
}
