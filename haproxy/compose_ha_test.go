package haproxy

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// TestComposeHA: docker-compose.ha.yml merges onto docker-compose.yml
// (parsed by Debian's docker-compose, no Docker engine needed): six Redis
// Cluster servers and their one-shot init, three NATS servers, and every
// node pointed at all of them.
func TestComposeHA(t *testing.T) {
	dc := testenv.LookPath(t, "docker-compose")
	args := []string{"-f", filepath.Join("..", "docker-compose.yml"), "-f", filepath.Join("..", "docker-compose.ha.yml"), "config"}
	out, err := exec.Command(dc, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose %v: %v\n%s", args, err, out)
	}
	full := string(out)
	for _, want := range []string{
		"SHOAL_REDIS: redis://redis-1:6379?addr=redis-2:6379&addr=redis-3:6379&addr=redis-4:6379&addr=redis-5:6379&addr=redis-6:6379",
		"SHOAL_NATS: nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222",
		"condition: service_completed_successfully",
		"redis-cli --cluster create",
		"nats://nats-1:6222,nats://nats-2:6222,nats://nats-3:6222",
	} {
		if !strings.Contains(full, want) {
			t.Errorf("merged compose configuration lacks %q", want)
		}
	}
	if n := strings.Count(full, "SHOAL_REDIS: redis://redis-1:6379?"); n != 3 {
		t.Errorf("%d nodes use the Redis Cluster, want 3", n)
	}
}
