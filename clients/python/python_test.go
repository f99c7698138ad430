package python

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/node/nodetest"
)

const secret = "py-secret"

// mint makes a token with the Python package.
func mint(t *testing.T, py, expr string) string {
	t.Helper()
	return strings.TrimSpace(testenv.Run(t, py, "-c", "import sys; sys.path.insert(0, '.'); import shoal; print("+expr+")"))
}

// TestPythonClient runs the Python tests against a node with Redis: a
// session authenticated by a token the package minted (Django signing,
// then JWT) receives what the package published by the HTTP API, Redis
// PUBLISH and the stream.
func TestPythonClient(t *testing.T) {
	py := nodetest.Python(t, "django", "jwt")
	redisURL := nodetest.Redis(t)
	n := nodetest.StartNode(t, "py1", "--apps", "hub", "--redis", redisURL, "--api-key", "k",
		"--bridge-stream", "shoal:stream", "--django-secret-key", secret, "--jwt-secret", "jwt-secret")

	for _, tok := range []string{
		mint(t, py, `shoal.django_token({"user": "7", "channels": ["py-room"]}, "`+secret+`")`),
		mint(t, py, `shoal.jwt_token("jwt-secret", user=7, channels=["py-room"])`),
	} {
		c := nodetest.DialHub(t, n.Addr)
		c.WaitFor(t, nodetest.Typed("request_auth", 0))
		c.Send(t, fmt.Sprintf(`{"data_type":"auth","data":{"token":%q}}`, tok))
		if m := c.WaitFor(t, nodetest.Typed("auth", 0)); m["data"].(map[string]any)["user"] != "7" {
			t.Fatalf("auth reply %v", m)
		}
	}
	c := nodetest.DialHub(t, n.Addr)
	c.WaitFor(t, nodetest.Typed("request_auth", 0))
	c.Send(t, fmt.Sprintf(`{"data_type":"auth","data":{"token":%q}}`,
		mint(t, py, `shoal.django_token("py-room", "`+secret+`")`)))
	c.WaitFor(t, nodetest.Typed("auth", 0))

	out := testenv.RunEnv(t, []string{"SHOAL_TEST_URL=" + n.URL(), "SHOAL_TEST_API_KEY=k", "SHOAL_TEST_REDIS=" + redisURL},
		py, "tests/test_shoal.py", "-v")
	if !regexp.MustCompile(`test_publish_paths .*\.\.\. ok`).MatchString(out) {
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
