package redisstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/store"
	redisstore "github.com/shoal-rt/shoal/store/redis"
	"github.com/shoal-rt/shoal/store/storetest"
)

func TestChannels(t *testing.T) {
	addr := testenv.Redis(t).Addr
	client := newClient(t, addr)
	storetest.RunChannels(t, func(t *testing.T) storetest.ChannelStore {
		return redisstore.New(client, redisstore.Config{Prefix: testenv.Prefix(t)})
	})
	t.Run("OneBucket", func(t *testing.T) {
		storetest.RunChannels(t, func(t *testing.T) storetest.ChannelStore {
			return redisstore.New(client, redisstore.Config{Prefix: testenv.Prefix(t), Buckets: 1})
		})
	})
}

// TestChannelsCluster runs the channel suite on a three-master Redis
// Cluster: channel and session keys sit in different slots, so every
// script must keep to one and the pipelines must be split by shard.
func TestChannelsCluster(t *testing.T) {
	client := startCluster(t)
	storetest.RunChannels(t, func(t *testing.T) storetest.ChannelStore {
		return redisstore.New(client, redisstore.Config{Prefix: testenv.Prefix(t)})
	})
}

// TestChannelKeysExpire: every channel key carries a TTL, so an abandoned
// cluster leaves no garbage.
func TestChannelKeysExpire(t *testing.T) {
	addr := testenv.Redis(t).Addr
	client := newClient(t, addr)
	prefix := testenv.Prefix(t)
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
