package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// TestSecurityProbesThroughHAProxy reruns issue 11's security probes from
// outside, against the node program behind the shipped haproxy.cfg: the
// node tells clients apart behind the balancer (--trusted-proxies with
// HAProxy's X-Forwarded-For) and limits each one's new sessions; pages
// from other origins are refused; a 60,000-character session id is a 404.
func TestSecurityProbesThroughHAProxy(t *testing.T) {
	n := nodetest.StartNode(t, "sec1", "--trusted-proxies", "127.0.0.1", "--new-sessions-per-ip", "2",
		"--allowed-origins", "https://app.example")
	_, lb := nodetest.HAProxy(t, []*nodetest.Node{n})

	// Clients on two loopback addresses, both through the balancer.
	client := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	}
	post := func(c *http.Client, url string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	a, b := client("127.0.0.2"), client("127.0.0.3")
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if code, _ := post(a, "http://"+lb+"/echo/info"); code != http.StatusMethodNotAllowed && code != http.StatusOK {
			return fmt.Errorf("balancer answers %d", code)
		}
		return nil
	})
	for i := range 2 {
		if code, body := post(a, fmt.Sprintf("http://%s/echo/000/a%d/xhr", lb, i)); body != "o\n" {
			t.Fatalf("client A's session %d: %d %q", i, code, body)
		}
	}
	if code, body := post(a, "http://"+lb+"/echo/000/a2/xhr"); code != http.StatusTooManyRequests {
		t.Fatalf("client A's third new session: %d %q, want 429", code, body)
	}
	// B is not A: were the node to see the balancer's address, B would be
	// over the limit too.
	if code, body := post(b, "http://"+lb+"/echo/000/b0/xhr"); body != "o\n" {
		t.Fatalf("client B's first session: %d %q", code, body)
	}

	if code, body := post(b, "http://"+lb+"/echo/000/b1/xhr", "Origin", "https://evil.example"); code != http.StatusForbidden {
		t.Fatalf("page from another origin: %d %q, want 403", code, body)
	}
	if code, body := post(b, "http://"+lb+"/echo/000/b1/xhr", "Origin", "https://app.example"); body != "o\n" {
		t.Fatalf("page from the allowed origin: %d %q", code, body)
	}
	// HAProxy refuses a 60,000-character URL itself; the node does too.
	if code, _ := post(b, n.URL()+"/echo/000/"+strings.Repeat("x", 60000)+"/xhr"); code != http.StatusNotFound {
		t.Fatalf("60,000-character session id: %d, want 404", code)
	}
}
