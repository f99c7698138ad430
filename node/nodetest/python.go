package nodetest

import (
	"bytes"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// Python finds a python3 that imports modules (Debian's, e.g. "django",
// "jwt"): /usr/bin/python3 first, since a pyenv or venv python3 earlier in
// PATH does not see Debian's packages. scripts/test and .ci/run install
// python3-django and python3-jwt.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	imports := "import " + strings.Join(modules, ", ")
	for _, p := range candidates {
		if exec.Command(p, "-c", imports).Run() == nil {
			return p
		}
	}
	t.Fatalf("nodetest: no python3 that can %q: apt-get install python3-django python3-jwt (scripts/test does)", imports)
	return ""
}

// RunPython runs script with Python(t, modules...), in as its JSON
// standard input, and decodes its standard output into out.
func RunPython(t testing.TB, modules []string, script string, in, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Python(t, modules...), script)
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("nodetest: %s: %v\n%s", script, err, stderr.String())
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("nodetest: %s output %q: %v", script, stdout, err)
	}
}

// WebhookBackend is the hub's webhook test backend
// (node/apps/hub/webhook/testdata/backend.py, Python's standard library
// only), a real HTTP server in a process of its own.
type WebhookBackend struct {
	Addr string // host:port; it answers webhooks on any path
}

// WebhookSeen is what the backend says it saw (GET /): the sessions whose
// disconnect it accepted, and the disconnect attempts per session.
type WebhookSeen struct {
	Disconnects []string       `json:"disconnects"`
	Attempts    map[string]int `json:"attempts"`
}

// StartWebhookBackend starts the backend on a free port; it checks
// signatures with secret.
func StartWebhookBackend(t testing.TB, secret string) *WebhookBackend {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "apps", "hub", "webhook", "testdata", "backend.py")
	b := &WebhookBackend{Addr: testenv.FreeAddr(t)}
	_, port, _ := net.SplitHostPort(b.Addr)
	Start(t, "python3", script, port, secret)
	testenv.WaitTCP(t, b.Addr)
	return b
}

// Seen asks the backend what it saw.
func (b *WebhookBackend) Seen() (WebhookSeen, error) {
	var s WebhookSeen
	err := GetJSON("http://"+b.Addr+"/", &s)
	return s, err
}
