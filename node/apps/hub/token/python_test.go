package token

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
)

// python runs testdata/mint.py (real Django's django.core.signing and
// PyJWT, from Debian's python3-django and python3-jwt) on the requests and
// returns one raw JSON result per request.
func python(t *testing.T, requests []map[string]any) []json.RawMessage {
	t.Helper()
	in, err := json.Marshal(requests)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pythonWithDjango(t), "testdata/mint.py")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testdata/mint.py: %v\n%s", err, stderr.String())
	}
	var results []json.RawMessage
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("testdata/mint.py output %q: %v", out, err)
	}
	if len(results) != len(requests) {
		t.Fatalf("testdata/mint.py: %d results for %d requests", len(results), len(requests))
	}
	return results
}

// pythonWithDjango finds a python3 that imports Debian's django and jwt:
// /usr/bin/python3 first (a pyenv or venv python3 earlier in PATH does not
// see Debian's packages). scripts/test and .ci/run install both packages.
func pythonWithDjango(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if exec.Command(p, "-c", "import django, jwt").Run() == nil {
			return p
		}
	}
	t.Fatalf("no python3 with django and jwt: apt-get install python3-django python3-jwt (scripts/test does)")
	return ""
}

func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a string: %v", raw, err)
	}
	return s
}
