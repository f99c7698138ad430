package redisstore_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/store"
	redisstore "github.com/shoal-rt/shoal/store/redis"
	"github.com/shoal-rt/shoal/store/storetest"
)

func TestChannels(t *testing.T) {
	addr, _ := startRedis(t)
	client := newClient(t, addr)
	storetest.RunChannels(t, func(t *testing.T) storetest.ChannelStore {
		return redisstore.New(client, redisstore.Config{Prefix: uniquePrefix(t)})
	})
	t.Run("OneBucket", func(t *testing.T) {
		storetest.RunChannels(t, func(t *testing.T) storetest.ChannelStore {
			return redisstore.New(client, redisstore.Config{Prefix: uniquePrefix(t), Buckets: 1})
		})
	})
}

// TestChannelsCluster runs the channel suite on a three-master Redis
// Cluster: channel and session keys sit in different slots, so every
// script must keep to one and the pipelines must be split by shard.
func TestChannelsCluster(t *testing.T) {
	client := startCluster(t)
	storetest.RunChannels(t, func(t *testing.T) storetest.ChannelStore {
		return redisstore.New(client, redisstore.Config{Prefix: uniquePrefix(t)})
	})
}

// TestChannelKeysExpire: every channel key carries a TTL, so an abandoned
// cluster leaves no garbage.
func TestChannelKeysExpire(t *testing.T) {
	addr, _ := startRedis(t)
	client := newClient(t, addr)
	prefix := uniquePrefix(t)
	s := redisstore.New(client, redisstore.Config{Prefix: prefix})
	ctx := context.Background()
	if _, err := s.Create(ctx, "a", store.CreateOptions{DisconnectDelay: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(ctx, "a", "room", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendChannel(ctx, "room", "m", store.LogOptions{Keep: time.Minute}); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, "*"+prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, k := range keys {
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 {
			t.Errorf("key %s has no TTL (%v)", k, ttl)
		}
		kinds = append(kinds, k[strings.LastIndexByte(k, '}')+1:])
	}
	for _, want := range []string{":h", ":l", ":m", ":ch:a"} {
		found := false
		for _, k := range kinds {
			found = found || k == want
		}
		if !found {
			t.Errorf("no %s key among %q", want, keys)
		}
	}
}

// startCluster starts a three-master Redis Cluster and returns a client.
func startCluster(t *testing.T) *redis.ClusterClient {
	t.Helper()
	var addrs []string
	for i := range 3 {
		dir := t.TempDir()
		addr, cmd := startRedisOn(t, clusterPort(t), "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)), "--dir", dir)
		if cmd == nil {
			t.Fatal("cluster node did not start (port taken)")
		}
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("/usr/bin/redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	ctx := context.Background()
	checkFor(t, 20*time.Second, 50*time.Millisecond, func() error {
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
