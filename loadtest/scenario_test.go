package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRefusesRemoteTargets(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"http://10.1.2.3:8080", "http://192.168.0.1", "ws://8.8.8.8/"} {
		_, err := Run(context.Background(), Config{URL: u, Duration: time.Second})
		if err == nil || !strings.Contains(err.Error(), "not a loopback") {
			t.Errorf("Run(%s) = %v, want a refusal", u, err)
		}
	}
	if _, err := NewClient(context.Background(), ClientConfig{URL: "ftp://127.0.0.1"}); err == nil {
		t.Error("an ftp URL must be refused")
	}
}

func TestBoundsAreEnforced(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{URL: "http://127.0.0.1:1", Sessions: MaxSessions + 1},
		{URL: "http://127.0.0.1:1", Duration: 2 * MaxDuration},
		{URL: "http://127.0.0.1:1", Rate: MaxRate * 2},
		{URL: "http://127.0.0.1:1", Payload: MaxPayload + 1},
		{URL: "http://127.0.0.1:1", Scenario: "nope"},
		{URL: "http://127.0.0.1:1", Scenario: "xhr-polling", Transport: TransportWebsocket},
		{URL: "http://127.0.0.1:1", Scenario: "hub", Sessions: 10, Rooms: 3, APIKey: "k"},
		{URL: "http://127.0.0.1:1", Scenario: "hub", Sessions: 10},
	} {
		if _, _, err := c.normalize(); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

// TestSourceAddressesSpread checks that connections leave from the
// addresses 127.0.0.1, .2, .3 in turn.
func TestSourceAddressesSpread(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.RemoteAddr[:strings.LastIndexByte(r.RemoteAddr, ':')]
		mu.Lock()
		seen[host]++
		mu.Unlock()
		w.Header().Set("Connection", "close") // a new connection per request
	}))
	defer srv.Close()
	c, err := NewClient(context.Background(), ClientConfig{URL: srv.URL, SourceIPs: 3})
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if err := c.Info(context.Background(), "/echo"); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		if seen[ip] != 2 {
			t.Errorf("connections from %s: %d, want 2 (all: %v)", ip, seen[ip], seen)
		}
	}
}
