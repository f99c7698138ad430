package redisstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/store"
	redisstore "github.com/shoal-rt/shoal/store/redis"
)

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
