package nodetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// HubAPI makes one call to the hub's HTTP API at base (http://host:port)
// with key: a GET, or a POST of body when there is one. A status other
// than 200 is an error.
func HubAPI(t testing.TB, base, key, path, body string) (map[string]any, error) {
	method := http.MethodGet
	if body != "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "apikey "+key)
	resp, err := testenv.HTTPClient(t).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("nodetest: %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return out, nil
}

// Bridging waits until exactly one of the running nodes runs the hub's
// bridge name ("redis", "stream", "nats"; /api/info says which), and
// returns its index.
func Bridging(t testing.TB, nodes []*Node, key, name string) int {
	t.Helper()
	var holder int
	testenv.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		var live []int
		for i, n := range nodes {
			if n.Exited() {
				continue
			}
			info, err := HubAPI(t, n.URL(), key, "/api/info", "")
			if err != nil {
				return err // a node still starting answers 503
			}
			node, _ := info["node"].(map[string]any)
			bridging, _ := node["bridging"].(map[string]any)
			if bridging[name] == true {
				live = append(live, i)
			}
		}
		if len(live) != 1 {
			return fmt.Errorf("nodetest: %s bridging on %v", name, live)
		}
		holder = live[0]
		return nil
	})
	return holder
}
