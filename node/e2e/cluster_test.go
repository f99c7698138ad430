package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/node/nodetest"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/sockjs/conformance"
)

// TestConformanceCluster runs our SockJS conformance suite against three
// node processes sharing Redis and NATS, through two balancers: the
// deployed HAProxy config, which sends every request to the next node
// (so the requests of one session hop between nodes), and HAProxy in TCP
// mode, which sends every connection to the next node and so lets the
// checks through that an HTTP proxy refuses (hixie-76).
func TestConformanceCluster(t *testing.T) {
	c := nodetest.StartCluster(t, 3, "--apps", "conformance")
	t.Run("per request", func(t *testing.T) {
		conformance.RunWith(t, "http://"+chunkedStreams(t, c.Nodes), conformance.Options{HTTPProxy: true})
	})
	t.Run("per connection", func(t *testing.T) {
		conformance.Run(t, "http://"+haproxyTCP(t, c.Nodes))
	})
}

// chunkedStreams starts the deployed HAProxy config in front of nodes but
// for one line, and returns its address. The deployed config has nodes end
// streams with their connection (sockjs.HeaderStreamEnd), so that a node
// killed mid-stream ends the client's stream cleanly; clients then get
// close-delimited streams, not the chunked ones the protocol's HTTP/1.1
// rules check. Those rules run through this balancer without that line;
// the stream end itself is tested by haproxy's TestStreamCutEndsCleanly
// and sockjs's TestStreamEndBehindBalancer.
func chunkedStreams(t *testing.T, nodes []*nodetest.Node) string {
	t.Helper()
	line := "    http-request set-header " + sockjs.HeaderStreamEnd + " close\n"
	_, addr, _ := nodetest.HAProxyWith(t, nodes, func(cfg string) string {
		if !strings.Contains(cfg, line) {
			t.Fatalf("haproxy.cfg no longer has %q; update this test", line)
		}
		return strings.Replace(cfg, line, "", 1)
	})
	return addr
}

// haproxyTCP starts HAProxy in TCP mode, round robin over nodes (a new
// node for every client connection), and returns its address.
func haproxyTCP(t *testing.T, nodes []*nodetest.Node) string {
	t.Helper()
	addr := testenv.FreeAddr(t)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `defaults
    mode tcp
    timeout connect 5s
    timeout client 65s
    timeout server 65s
frontend shoal
    bind %s
    default_backend shoal_nodes
backend shoal_nodes
    balance roundrobin
`, addr)
	for _, n := range nodes {
		fmt.Fprintf(&cfg, "    server %s %s\n", n.ID, n.Addr)
	}
	path := testenv.TempFile(t, "haproxy-tcp.cfg", cfg.String())
	nodetest.Start(t, testenv.LookPath(t, "haproxy"), "-db", "-f", path)
	testenv.WaitTCP(t, addr)
	return addr
}

// TestStreamingLatency: a message sent to a streaming session through the
// balancer (the send lands on one node, the stream is held by another)
// reaches the client within milliseconds. HAProxy without "option
// http-no-delay" held every streamed chunk for about 200 ms.
func TestStreamingLatency(t *testing.T) {
	c := nodetest.StartCluster(t, 3, "--apps", "conformance")
	for _, tc := range []struct{ transport, method, frame string }{
		{"xhr_streaming", "POST", "%s\n"},
		{"eventsource", "GET", "data: %s\r\n"},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			session := c.URL() + "/echo/000/" + tc.transport + fmt.Sprint(time.Now().UnixNano())
			req, _ := http.NewRequest(tc.method, session+"/"+tc.transport, nil)
			resp, err := testenv.HTTPClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			lines := make(chan string, 64)
			go func() {
				defer close(lines)
				br := bufio.NewReader(resp.Body)
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					lines <- l
				}
			}()
			await := func(want string) time.Duration {
				t.Helper()
				start := time.Now()
				timeout := time.After(5 * time.Second)
				for {
					select {
					case l, ok := <-lines:
						if !ok {
							t.Fatalf("stream ended before %q", want)
						}
						if l == want {
							return time.Since(start)
						}
					case <-timeout:
						t.Fatalf("no %q within 5s", want)
					}
				}
			}
			await(fmt.Sprintf(tc.frame, "o"))
			var took []time.Duration
			for i := range 9 {
				msg := fmt.Sprintf("m%d", i)
				start := time.Now()
				resp, err := testenv.HTTPClient(t).Post(session+"/xhr_send", "text/plain", strings.NewReader(`["`+msg+`"]`))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 204 {
					t.Fatalf("xhr_send: %s", resp.Status)
				}
				await(fmt.Sprintf(tc.frame, `a["`+msg+`"]`))
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			t.Logf("send-to-stream round trips: min %v, median %v, max %v", took[0], took[len(took)/2], took[len(took)-1])
			// A 200 ms hold on every chunk is what this guards against;
			// the median leaves room for a slow machine.
			if med := took[len(took)/2]; med > 100*time.Millisecond {
				t.Errorf("median send-to-stream round trip %v, want well under 100ms", med)
			}
		})
	}
}
