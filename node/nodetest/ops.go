package nodetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// opsClient reads a node's operations endpoints; a node that does not
// answer in 5 s counts as an error.
var opsClient = &http.Client{Timeout: 5 * time.Second}

// GetJSON decodes the JSON reply of a GET of url into v; a status other
// than 200 is an error.
func GetJSON(url string, v any) error {
	code, body, err := TryGet(url)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("nodetest: GET %s: %d %s", url, code, body)
	}
	return json.Unmarshal([]byte(body), v)
}

// WaitGet polls GET url until it answers code with a body that contains
// each of want, and fails the test if that has not happened within d: a
// node's /readyz through startup, an outage or a drain, say.
func WaitGet(t testing.TB, d time.Duration, url string, code int, want ...string) {
	t.Helper()
	testenv.CheckFor(t, d, 25*time.Millisecond, func() error {
		got, body, err := TryGet(url)
		if err != nil {
			return err
		}
		if got != code {
			return fmt.Errorf("GET %s = %d %q, want %d", url, got, body, code)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return fmt.Errorf("GET %s = %d %q, want %q in it", url, got, body, w)
			}
		}
		return nil
	})
}

// AliveMembers reads the /_shoal/cluster of the node at base
// (http://host:port) and returns the members it sees alive: id ->
// advertised HTTP address.
func AliveMembers(base string) (map[string]string, error) {
	var v struct {
		Members []struct {
			ID       string `json:"id"`
			State    string `json:"state"`
			HTTPAddr string `json:"http_addr"`
		} `json:"members"`
	}
	if err := GetJSON(base+"/_shoal/cluster", &v); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range v.Members {
		if m.State == "alive" {
			out[m.ID] = m.HTTPAddr
		}
	}
	return out, nil
}

// Metric returns the sum of the samples of metric name, every label set,
// in the /metrics of the node at base (http://host:port); an error when
// there is none.
func Metric(base, name string) (float64, error) {
	_, body, err := TryGet(base + "/metrics")
	if err != nil {
		return 0, err
	}
	sum, found := 0.0, false
	for line := range strings.SplitSeq(body, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			v, err := strconv.ParseFloat(rest[i+1:], 64)
			if err != nil {
				return 0, fmt.Errorf("nodetest: %s: %q: %w", name, line, err)
			}
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("nodetest: no metric %s", name)
	}
	return sum, nil
}
