package nodetest

import (
	"io"
	"net/http"
	"testing"
)

// CheckRotation sends per*len(nodes) requests through the round-robin
// balancer at lbURL and fails t unless exactly per went to each node (the
// X-Shoal-Server header names the node that answered).
func CheckRotation(t testing.TB, lbURL string, nodes []string, per int) {
	t.Helper()
	counts := map[string]int{}
	for range per * len(nodes) {
		resp, err := opsClient.Get(lbURL + "/echo/info")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/echo/info through the balancer: %s", resp.Status)
		}
		counts[resp.Header.Get("X-Shoal-Server")]++
	}
	for _, n := range nodes {
		if counts[n] != per {
			t.Fatalf("%d requests went %v, want %d to each of %v", per*len(nodes), counts, per, nodes)
		}
	}
}
