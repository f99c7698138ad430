package haproxy

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// TestComposeHA: docker-compose.ha.yml and docker-compose.sentinel.yml
// each merge onto docker-compose.yml (parsed by Debian's docker-compose,
// no Docker engine needed): a Redis Cluster of six servers and its
// one-shot init, or a master, two replicas and three Sentinels; three
// NATS servers; and every node pointed at all of them.
func TestComposeHA(t *testing.T) {
	dc := testenv.LookPath(t, "docker-compose")
	nats := []string{
		"SHOAL_NATS: nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222",
		"nats://nats-1:6222,nats://nats-2:6222,nats://nats-3:6222",
	}
	for file, tc := range map[string]struct {
		redisURL string
		want     []string
	}{
		"docker-compose.ha.yml": {
			redisURL: "redis://redis-1:6379?addr=redis-2:6379&addr=redis-3:6379&addr=redis-4:6379&addr=redis-5:6379&addr=redis-6:6379",
			want:     []string{"condition: service_completed_successfully", "redis-cli --cluster create"},
		},
		"docker-compose.sentinel.yml": {
			redisURL: "redis+sentinel://sentinel-1:26379,sentinel-2:26379,sentinel-3:26379/shoal/0",
			want:     []string{"sentinel monitor shoal redis-1 6379 2", "--replicaof", "exec redis-server /tmp/sentinel.conf --sentinel"},
		},
	} {
		args := []string{"-f", filepath.Join("..", "docker-compose.yml"), "-f", filepath.Join("..", file), "config"}
		out, err := exec.Command(dc, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker-compose %v: %v\n%s", args, err, out)
		}
		full := string(out)
		for _, want := range append(tc.want, nats...) {
			if !strings.Contains(full, want) {
				t.Errorf("%s: merged compose configuration lacks %q", file, want)
			}
		}
		if n := strings.Count(full, "SHOAL_REDIS: "+tc.redisURL+"\n"); n != 3 {
			t.Errorf("%s: %d nodes use %s, want 3", file, n, tc.redisURL)
		}
	}
}
