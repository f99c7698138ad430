package token

import (
	"encoding/json"
	"testing"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// python runs testdata/mint.py (real Django's django.core.signing and
// PyJWT, from Debian's python3-django and python3-jwt) on the requests and
// returns one raw JSON result per request.
func python(t *testing.T, requests []map[string]any) []json.RawMessage {
	t.Helper()
	var results []json.RawMessage
	nodetest.RunPython(t, []string{"django", "jwt"}, "testdata/mint.py", requests, &results)
	if len(results) != len(requests) {
		t.Fatalf("testdata/mint.py: %d results for %d requests", len(results), len(requests))
	}
	return results
}

func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a string: %v", raw, err)
	}
	return s
}
