package python

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// pythonWithDjango finds a python3 that imports Debian's django and jwt:
// /usr/bin/python3 first (a pyenv or venv python3 earlier in PATH does not
// see Debian's packages). scripts/test and .ci/run install both.
func pythonWithDjango(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if exec.Command(p, "-c", "import django, jwt").Run() == nil {
			return p
		}
	}
	t.Fatal("no python3 with django and jwt: apt-get install python3-django python3-jwt (scripts/test does)")
	return ""
}

const secret = "py-secret"

// mint makes a token with the Python package.
func mint(t *testing.T, py, expr string) string {
	t.Helper()
	out, err := exec.Command(py, "-c", "import sys; sys.path.insert(0, '.'); import shoal; print("+expr+")").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", expr, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPythonClient runs the Python tests against a node with Redis: a
// session authenticated by a token the package minted (Django signing,
// then JWT) receives what the package published by the HTTP API, Redis
// PUBLISH and the stream.
func TestPythonClient(t *testing.T) {
	py := pythonWithDjango(t)
	redisURL := nodetest.Redis(t)
	n := nodetest.StartNode(t, "py1", "--apps", "hub", "--redis", redisURL, "--api-key", "k",
		"--bridge-stream", "shoal:stream", "--django-secret-key", secret, "--jwt-secret", "jwt-secret")

	for _, tok := range []string{
		mint(t, py, `shoal.django_token({"user": "7", "channels": ["py-room"]}, "`+secret+`")`),
		mint(t, py, `shoal.jwt_token("jwt-secret", user=7, channels=["py-room"])`),
	} {
		c := dial(t, n.Addr)
		c.waitFor(t, "request_auth")
		c.Send(t, fmt.Sprintf(`{"data_type":"auth","data":{"token":%q}}`, tok))
		if m := c.waitFor(t, "auth"); m["data"].(map[string]any)["user"] != "7" {
			t.Fatalf("auth reply %v", m)
		}
	}
	c := dial(t, n.Addr)
	c.waitFor(t, "request_auth")
	c.Send(t, fmt.Sprintf(`{"data_type":"auth","data":{"token":%q}}`,
		mint(t, py, `shoal.django_token("py-room", "`+secret+`")`)))
	c.waitFor(t, "auth")

	cmd := exec.Command(py, "tests/test_shoal.py", "-v")
	cmd.Env = append(os.Environ(), "SHOAL_TEST_URL="+n.URL(), "SHOAL_TEST_API_KEY=k", "SHOAL_TEST_REDIS="+redisURL)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python tests: %v\n%s", err, out)
	} else if !regexp.MustCompile(`test_publish_paths .*\.\.\. ok`).Match(out) {
		t.Fatalf("python node tests did not run:\n%s", out)
	}
	want := []string{`http 0`, `http 1`, `redis 2`, `data not json`, `stream 3`}
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		var got []string
		for _, m := range c.Messages() {
			switch {
			case m["channel"] != "py-room":
			case m["src"] != nil:
				got = append(got, fmt.Sprint(m["src"], " ", m["n"]))
			case m["data_type"] == "data":
				got = append(got, fmt.Sprint("data ", m["data"]))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	})
}

// wsClient is a hub session of the test, over the websocket transport.
type wsClient struct{ *nodetest.HubClient }

func dial(t *testing.T, addr string) *wsClient {
	t.Helper()
	return &wsClient{nodetest.DialHub(t, fmt.Sprintf("ws://%s/hub/0/py%d/websocket", addr, time.Now().UnixNano()))}
}

func (c *wsClient) waitFor(t *testing.T, typ string) map[string]any {
	t.Helper()
	var found map[string]any
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		for _, m := range c.Messages() {
			if m["data_type"] == typ {
				found = m
				return nil
			}
		}
		return fmt.Errorf("no %s in %v", typ, c.Messages())
	})
	return found
}
