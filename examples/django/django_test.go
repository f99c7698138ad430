package django

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/node/nodetest"
)

const (
	secret = "example-test-secret"
	apiKey = "example-api-key"
)

// TestDjangoExample runs the example as its README says, on three nodes
// behind HAProxy: a user logs in to the Django site, opens a room, and
// two hub sessions with the token the page carries (each through the
// balancer) get the arrival notice Django publishes by the HTTP API, each
// other's chat, and the dashboard the management command pushes by Redis.
func TestDjangoExample(t *testing.T) {
	py := nodetest.Python(t, "django")
	sockjsClient, err := filepath.Abs(filepath.Join(browserModules, "sockjs-client"))
	if err != nil {
		t.Fatal(err)
	}
	c := nodetest.StartCluster(t, 3, "--apps", "hub", "--api-key", apiKey,
		"--django-secret-key", secret, "--config", "hub.json", "--sockjs-client", sockjsClient)
	env := []string{"DJANGO_SECRET_KEY=" + secret, "SHOAL_HUB=" + c.URL(), "SHOAL_REDIS=" + c.Redis,
		"SHOAL_API_KEY=" + apiKey, "CHAT_DB=" + filepath.Join(t.TempDir(), "db.sqlite3")}
	manage := func(args ...string) string {
		t.Helper()
		return testenv.RunEnv(t, env, py, append([]string{"manage.py"}, args...)...)
	}
	manage("migrate", "-v0")
	for _, user := range []string{"ann", "bob"} {
		testenv.RunEnv(t, append(env, "DJANGO_SUPERUSER_PASSWORD="+user+"-password"),
			py, "manage.py", "createsuperuser", "--noinput", "--username", user, "--email", user+"@example.com")
	}
	addr := testenv.FreeAddr(t)
	nodetest.StartEnv(t, env, py, "manage.py", "runserver", "--noreload", addr)
	testenv.WaitTCP(t, addr)
	site := "http://" + addr

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(path string) string {
		t.Helper()
		resp, err := browser.Get(site + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	login := get("/login/")
	csrf := regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`).FindStringSubmatch(login)
	if csrf == nil {
		t.Fatalf("no CSRF token in the login page:\n%s", login)
	}
	resp, err := browser.PostForm(site+"/login/", url.Values{"csrfmiddlewaretoken": {csrf[1]}, "username": {"ann"}, "password": {"ann-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	page := get("/room/lobby/")
	tok := regexp.MustCompile(`token: '([^']+)'`).FindStringSubmatch(page)
	if tok == nil || !strings.Contains(page, c.URL()+"/hub-client.js") {
		t.Fatalf("room page without token or hub script:\n%s", page)
	}

	a, b := nodetest.DialHub(t, c.Addr), nodetest.DialHub(t, c.Addr)
	for _, s := range []*nodetest.HubClient{a, b} {
		s.WaitFor(t, nodetest.Typed("request_auth", 0))
		s.Send(t, fmt.Sprintf(`{"data_type":"auth","data":{"token":%q}}`, tok[1]))
		s.WaitFor(t, func(m map[string]any) bool { return m["data_type"] == "auth" && data(m)["user"] == "1" })
	}
	get("/room/lobby/") // Django announces ann's arrival through the API
	for _, s := range []*nodetest.HubClient{a, b} {
		s.WaitFor(t, func(m map[string]any) bool { return m["data_type"] == "notice" && m["channel"] == "room-lobby" })
	}
	a.Send(t, `{"data_type":"publish","id":1,"data":{"channel":"room-lobby","data":{"data_type":"chat","user":"ann","text":"hello"}}}`)
	b.WaitFor(t, func(m map[string]any) bool { return m["data_type"] == "chat" && m["text"] == "hello" })

	out := manage("push_dashboard", "--count", "3", "--interval", "0.05")
	if !strings.Contains(out, "tick 3 (bridged by 1 node)") {
		t.Fatalf("push_dashboard: %s", out)
	}
	for _, s := range []*nodetest.HubClient{a, b} {
		s.WaitFor(t, func(m map[string]any) bool { return m["data_type"] == "stats" && m["tick"] == 3.0 && m["users"] == 2.0 })
	}

	t.Run("chromium", func(t *testing.T) { checkInChromium(t, site, manage) })
}

// browserModules is where scripts/test installs playwright-core and
// sockjs-client (npm ci) for the end-to-end tests.
const browserModules = "../../node/e2e/testdata/browser/node_modules"

// checkInChromium: two users log in to the site in Debian's Chromium and
// chat in one room through HAProxy; then the dashboard page shows what
// the management command pushes.
func checkInChromium(t *testing.T, site string, manage func(...string) string) {
	modules, _ := filepath.Abs(browserModules)
	arg, _ := json.Marshal(map[string]any{"chromium": testenv.LookPath(t, "chromium"), "site": site, "modules": modules, "timeoutMs": 90000})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := nodetest.NodeJS(t, ctx, "testdata/browser.js", string(arg))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	var result struct {
		Done bool `json:"done"`
		Chat map[string]struct {
			Log      string `json:"log"`
			Presence string `json:"presence"`
		} `json:"chat"`
		Dashboard  map[string]string `json:"dashboard"`
		PageErrors []string          `json:"pageErrors"`
		Error      string            `json:"error"`
	}
	dec := json.NewDecoder(stdout)
	for !result.Done {
		var line struct {
			DashboardReady bool `json:"dashboardReady"`
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("browser.js: %v", err) // stderr: logged at the end
		}
		json.Unmarshal(raw, &line)
		if line.DashboardReady {
			manage("push_dashboard", "--count", "3", "--interval", "0.2")
			continue
		}
		json.Unmarshal(raw, &result)
	}
	if result.Error != "" || len(result.PageErrors) > 0 {
		t.Fatalf("browser: %s %v", result.Error, result.PageErrors)
	}
	for _, user := range []string{"ann", "bob"} {
		chat := result.Chat[user]
		if !strings.Contains(chat.Log, "ann: hello from ann") || !strings.Contains(chat.Log, "bob: hello from bob") || chat.Presence != "2" {
			t.Errorf("%s's room page: log %q, presence %q", user, chat.Log, chat.Presence)
		}
	}
	if result.Dashboard["tick"] != "3" || result.Dashboard["users"] != "2" {
		t.Errorf("dashboard %v", result.Dashboard)
	}
}

func data(m map[string]any) map[string]any {
	d, _ := m["data"].(map[string]any)
	return d
}
