package loadtest

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// TestBackendCounters reads a real Redis's and a real nats-server's
// counts before and after some traffic, as compare does around a
// cluster's window.
func TestBackendCounters(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t)
	ports := testenv.FreePorts(t, 2)
	nats := exec.Command(testenv.LookPath(t, "nats-server"), "-a", "127.0.0.1", "-p", fmt.Sprint(ports[0]), "-m", fmt.Sprint(ports[1]))
	if err := nats.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nats.Process.Kill(); _ = nats.Wait() })
	monitor := fmt.Sprintf("127.0.0.1:%d", ports[1])
	read := joinCounters(redisCounters(r.Addr), natsCounters(monitor))
	ctx := context.Background()
	var before map[string]float64
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() (err error) {
		before, err = read(ctx)
		return err
	})

	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	nc, err := natsgo.Connect(fmt.Sprintf("nats://127.0.0.1:%d", ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for range 10 {
		if err := nc.Publish("wake", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := c.Eval(ctx, "redis.call('SET', KEYS[1], 'v'); return redis.call('GET', KEYS[1])", []string{"k"}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	after, err := read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	per := countsPerOp(before, after, 10)
	// Per script: the EVAL, its SET and GET (and this read's own INFO
	// and the client's HELLO, a fraction of one each).
	if got := per[CountRedisScripts]; got != 1 {
		t.Errorf("scripts per op = %v, want 1", got)
	}
	if got := per[CountRedisCommands]; got < 3 || got > 3.5 {
		t.Errorf("commands per op = %v, want 3 to 3.5", got)
	}
	if per[CountRedisCPU] <= 0 {
		t.Errorf("Redis CPU per op = %v µs, want more than 0", per[CountRedisCPU])
	}
	if got := per[CountNATSIn]; got != 1 {
		t.Errorf("NATS messages in per op = %v, want 1", got)
	}
	if countsPerOp(before, after, 0) != nil {
		t.Error("counts per op of no op must be nil")
	}
}
