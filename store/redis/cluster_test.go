package redisstore_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/store"
	redisstore "github.com/shoal-rt/shoal/store/redis"
	"github.com/shoal-rt/shoal/store/storetest"
)

// TestCluster runs every storetest suite against a three-master Redis
// Cluster: every script must keep to one slot (channel and session keys sit
// in different slots), Reap must read every shard, and the pipelines must
// be split by shard.
func TestCluster(t *testing.T) {
	client := startCluster(t)
	ctx := context.Background()
	storetest.RunAll(t, storesOn(client, 0))

	// The buckets really are spread over the shards.
	s := redisstore.New(client, redisstore.Config{Prefix: testenv.Prefix(t)})
	for i := range 50 {
		if _, err := s.Create(ctx, fmt.Sprint(i), store.CreateOptions{DisconnectDelay: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	var shards atomic.Int32
	err := client.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := c.DBSize(ctx).Result()
		if err == nil && n > 0 {
			shards.Add(1)
		}
		return err
	})
	if err != nil || shards.Load() != 3 {
		t.Fatalf("sessions on %d of 3 shards (%v)", shards.Load(), err)
	}
}

// startCluster starts a three-master Redis Cluster and returns a client.
func startCluster(t *testing.T) *redis.ClusterClient {
	t.Helper()
	var addrs []string
	for i := range 3 {
		dir := t.TempDir()
		r := testenv.RedisOn(t, testenv.ClusterPort(t), "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)), "--dir", dir)
		if r == nil {
			t.Fatal("cluster node did not start (port taken)")
		}
		addrs = append(addrs, r.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("/usr/bin/redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	ctx := context.Background()
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		for _, a := range addrs {
			c := redis.NewClient(&redis.Options{Addr: a})
			info, err := c.ClusterInfo(ctx).Result()
			c.Close()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s: cluster not ready", a)
			}
		}
		return client.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
	})
	return client
}

// sentinelClient is a client for g's redis+sentinel:// URL, built as a
// node builds it (redisstore.NewClient), waiting up to wait in outages.
func sentinelClient(t *testing.T, g *testenv.SentinelGroup, wait time.Duration) redis.UniversalClient {
	t.Helper()
	client, err := redisstore.NewClient(g.URL(), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// TestSentinel runs the store and channel suites on a master found
// through three Sentinels.
func TestSentinel(t *testing.T) {
	t.Parallel() // mostly waiting on the Sentinels' timers
	g := testenv.RedisSentinel(t, 1, 3)
	client := sentinelClient(t, g, 0)
	newStore := func(t *testing.T) store.Store {
		return redisstore.New(client, redisstore.Config{Prefix: testenv.Prefix(t)})
	}
	storetest.Run(t, newStore)
	storetest.RunChannels(t, func(t *testing.T) storetest.ChannelStore {
		return redisstore.New(client, redisstore.Config{Prefix: testenv.Prefix(t)})
	})
}
