package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// The browser tests run the real sockjs-client 1.6.1 in Debian's Chromium
// (driven by playwright-core, testdata/browser/driver.js) against node
// processes. The test page is served from another origin than the SockJS
// server, which is what makes sockjs-client use its cross-domain
// transports: the iframe-* ones (an iframe from the server's origin loads
// sockjs-client from --sockjs-url and runs the transport inside it),
// jsonp-polling, and CORS for the rest. Everything stays on loopback: the
// test serves sockjs.min.js from node_modules itself.

const browserDir = "testdata/browser"

// browserTransports are forced one at a time with sockjs-client's
// transports option; the first four are the browser-only ones.
var browserTransports = []string{
	"iframe-htmlfile", "iframe-xhr-polling", "iframe-eventsource", "jsonp-polling",
	"websocket", "xhr-streaming", "xhr-polling", "eventsource",
}

// browserGroups pair transports for /broadcast: each pair runs as two
// browser sessions that both send and both must receive everything.
var browserGroups = [][]string{
	{"iframe-htmlfile", "websocket"},
	{"jsonp-polling", "iframe-eventsource"},
	{"iframe-xhr-polling", "xhr-streaming"},
	{"eventsource", "xhr-polling"},
}

// browserOversize sends one message over the node's MaxMessageSize (the
// default, 1 MiB): the session must close with 1009, also on
// jsonp-polling, whose client cannot see the 413 its send gets.
var browserOversize = []string{"jsonp-polling", "websocket"}

const (
	browserEchoCount      = 30
	browserBroadcastCount = 20
	browserOversizeBytes  = 1100 << 10
)

type browserSession struct {
	Transport string   `json:"transport"`
	Tag       string   `json:"tag"`
	Got       string   `json:"got"` // sock.transport once open
	Received  []string `json:"received"`
	Error     string   `json:"error"`
	Ms        int      `json:"ms"`      // whole scenario, page load included
	PageMs    int      `json:"pageMs"`  // new context and page load
	OpenMs    int      `json:"openMs"`  // new SockJS until open
	Servers   []string `json:"servers"` // X-Shoal-Server of its responses (behind HAProxy)
	Closed    string   `json:"closed"`  // "code reason" once closed
}

type browserResult struct {
	Error     string           `json:"error"`
	LaunchMs  int              `json:"launchMs"`
	TotalMs   int              `json:"totalMs"`
	Echo      []browserSession `json:"echo"`
	Broadcast []struct {
		Sessions []browserSession `json:"sessions"`
		Ms       int              `json:"ms"`
	} `json:"broadcast"`
	Oversize    []browserSession `json:"oversize"`
	OffLoopback []string         `json:"offLoopback"`
	PageErrors  []string         `json:"pageErrors"`
}

// assetServer serves the test page and sockjs-client's browser build on
// an origin of its own, and notes who fetched the script.
type assetServer struct {
	*httptest.Server
	mu       sync.Mutex
	referers []string // of the script's fetches
}

// fetchedFrom reports whether a page of origin base fetched the script.
// Chromium's default referrer policy sends only the origin cross-origin.
func (a *assetServer) fetchedFrom(base string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.ContainsFunc(a.referers, func(r string) bool { return strings.HasPrefix(r, base+"/") })
}

func startAssets(t *testing.T) *assetServer {
	t.Helper()
	a := &assetServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /page.html", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(browserDir, "page.html"))
	})
	mux.HandleFunc("GET /sockjs.min.js", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		if len(a.referers) < 1000 {
			a.referers = append(a.referers, r.Referer())
		}
		a.mu.Unlock()
		// Not cached, so the iframe's own fetch reaches this server too.
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFile(w, r, filepath.Join(browserDir, "node_modules", "sockjs-client", "dist", "sockjs.min.js"))
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

// runBrowser runs driver.js once (one browser launch) against base.
func runBrowser(t *testing.T, assets *assetServer, base string) browserResult {
	t.Helper()
	cfg := map[string]any{
		"chromium":  chromium(t),
		"page":      assets.URL + "/page.html",
		"base":      base,
		"echo":      map[string]any{"endpoint": "/echo", "transports": browserTransports, "count": browserEchoCount},
		"broadcast": map[string]any{"endpoint": "/broadcast", "groups": browserGroups, "count": browserBroadcastCount},
		"oversize":  map[string]any{"endpoint": "/echo", "transports": browserOversize, "bytes": browserOversizeBytes},
		"timeoutMs": 90000,
	}
	start := time.Now()
	out := runDriver(t, browserDir, "driver.js", cfg, 90*time.Second)
	var r browserResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("driver output %q: %v", out, err)
	}
	t.Logf("browser: launch %d ms, scenarios %d ms, driver process %v", r.LaunchMs, r.TotalMs, time.Since(start).Round(time.Millisecond))
	if r.Error != "" {
		// What finished before is still judged below.
		t.Errorf("driver error: %s", r.Error)
	}
	if len(r.OffLoopback) > 0 {
		t.Errorf("requests left loopback: %q", r.OffLoopback)
	}
	if len(r.PageErrors) > 0 {
		t.Errorf("page errors: %q", r.PageErrors)
	}
	return r
}

// checkHops: behind the round-robin balancer, the requests of one
// session (all but a websocket's, which are just the info request and
// the upgrade) were answered by more than one node.
func checkHops(t *testing.T, s browserSession, cluster bool) {
	t.Helper()
	if cluster && s.Transport != "websocket" && len(s.Servers) < 2 {
		t.Errorf("%s: every request went to nodes %q: the session never hopped", s.Transport, s.Servers)
	}
}

func checkBrowserEcho(t *testing.T, r browserResult, cluster bool) {
	t.Helper()
	want := make([]string, 0, browserEchoCount+1)
	for i := range browserEchoCount {
		want = append(want, fmt.Sprintf("msg-%d", i))
	}
	want = append(want, "end")
	if len(r.Echo) != len(browserTransports) {
		t.Fatalf("got %d echo results, want %d", len(r.Echo), len(browserTransports))
	}
	for _, s := range r.Echo {
		t.Run("echo/"+s.Transport, func(t *testing.T) {
			if s.Error != "" {
				t.Fatalf("%s (received %d: %q)", s.Error, len(s.Received), s.Received)
			}
			if s.Got != s.Transport {
				t.Errorf("sockjs-client used %q, want %q", s.Got, s.Transport)
			}
			if !slices.Equal(s.Received, want) {
				t.Errorf("received %q, want %q", s.Received, want)
			}
			checkHops(t, s, cluster)
			t.Logf("page %d ms, open %d ms, %d messages in %d ms, nodes %q", s.PageMs, s.OpenMs, browserEchoCount, s.Ms-s.PageMs-s.OpenMs, s.Servers)
		})
	}
}

// checkBrowserBroadcast: every session of a group got every message of
// every sender of its group exactly once, in that sender's order, then the
// sender's end marker, and nothing from another group.
func checkBrowserBroadcast(t *testing.T, r browserResult, cluster bool) {
	t.Helper()
	if len(r.Broadcast) != len(browserGroups) {
		t.Fatalf("got %d broadcast groups, want %d", len(r.Broadcast), len(browserGroups))
	}
	for g, group := range r.Broadcast {
		t.Run(fmt.Sprintf("broadcast/%s+%s", browserGroups[g][0], browserGroups[g][1]), func(t *testing.T) {
			if len(group.Sessions) != len(browserGroups[g]) {
				t.Fatalf("got %d sessions, want %d", len(group.Sessions), len(browserGroups[g]))
			}
			tags := map[string]bool{}
			for _, s := range group.Sessions {
				tags[s.Tag] = true
			}
			for _, s := range group.Sessions {
				if s.Error != "" {
					t.Errorf("%s: %s (received %d: %q)", s.Transport, s.Error, len(s.Received), s.Received)
					continue
				}
				if s.Got != s.Transport {
					t.Errorf("sockjs-client used %q, want %q", s.Got, s.Transport)
				}
				checkHops(t, s, cluster)
				next := map[string]int{} // sender tag → next expected number
				ended := map[string]bool{}
				for _, m := range s.Received {
					tag, num, ok := strings.Cut(m, ":")
					if !ok || !tags[tag] {
						t.Errorf("%s: unexpected message %q", s.Transport, m)
						continue
					}
					if ended[tag] {
						t.Errorf("%s: %q after %s's end marker", s.Transport, m, tag)
						continue
					}
					if num == "end" {
						ended[tag] = true
						if next[tag] != browserBroadcastCount {
							t.Errorf("%s: %s ended after %d of %d messages", s.Transport, tag, next[tag], browserBroadcastCount)
						}
						continue
					}
					if num != fmt.Sprint(next[tag]) {
						t.Errorf("%s: from %s got #%s, want #%d (lost, duplicated or reordered)", s.Transport, tag, num, next[tag])
					}
					next[tag]++
				}
				for tag := range tags {
					if !ended[tag] {
						t.Errorf("%s: no end marker from %s", s.Transport, tag)
					}
				}
			}
			t.Logf("%d sessions × %d messages in %d ms", len(group.Sessions), browserBroadcastCount, group.Ms)
		})
	}
}

// checkBrowserOversize: a message over MaxMessageSize closes the session
// with 1009 and nothing after it is echoed.
func checkBrowserOversize(t *testing.T, r browserResult) {
	t.Helper()
	if len(r.Oversize) != len(browserOversize) {
		t.Fatalf("got %d oversize results, want %d", len(r.Oversize), len(browserOversize))
	}
	for _, s := range r.Oversize {
		t.Run("oversize/"+s.Transport, func(t *testing.T) {
			if s.Error != "" {
				t.Fatalf("%s (received %q)", s.Error, s.Received)
			}
			if s.Got != s.Transport {
				t.Errorf("sockjs-client used %q, want %q", s.Got, s.Transport)
			}
			if s.Closed != "1009 Message too big" {
				t.Errorf("session ended with %q, want \"1009 Message too big\"", s.Closed)
			}
			if !slices.Equal(s.Received, []string{"before"}) {
				t.Errorf("received %q, want only \"before\"", s.Received)
			}
		})
	}
}

func checkBrowser(t *testing.T, assets *assetServer, base string, cluster bool) {
	t.Helper()
	r := runBrowser(t, assets, base)
	checkBrowserEcho(t, r, cluster)
	checkBrowserBroadcast(t, r, cluster)
	checkBrowserOversize(t, r)
	// The iframe transports ran inside Shoal's iframe page, which must
	// have loaded sockjs-client from --sockjs-url (this server).
	if !assets.fetchedFrom(base) {
		assets.mu.Lock()
		t.Errorf("Shoal's iframe page never fetched sockjs-client from --sockjs-url (referers %q)", assets.referers)
		assets.mu.Unlock()
	}
}

func TestBrowserOneNode(t *testing.T) {
	assets := startAssets(t)
	n := nodetest.StartNode(t, "solo", "--apps", "conformance", "--sockjs-url", assets.URL+"/sockjs.min.js")
	checkBrowser(t, assets, n.URL(), false)
}

func TestBrowserClusterRoundRobin(t *testing.T) {
	assets := startAssets(t)
	c := nodetest.StartCluster(t, 3, "--apps", "conformance", "--sockjs-url", assets.URL+"/sockjs.min.js")
	checkBrowser(t, assets, c.URL(), true)
}
