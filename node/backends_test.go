package main

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/node/ops"
)

// BenchmarkRedisTimer is what timing adds to each Redis command the store
// sends (one per store operation): naming it by its script and recording
// its latency.
//
//	go test -run XXX -bench RedisTimer -benchmem ./node/
func BenchmarkRedisTimer(b *testing.B) {
	run := redisTimer{ops.NewLatency()}.ProcessHook(func(context.Context, redis.Cmder) error { return nil })
	ctx := context.Background()
	cmd := redis.NewCmd(ctx, "evalsha", "0123456789abcdef0123456789abcdef01234567", 1, "{s}:key")
	b.ReportAllocs()
	for b.Loop() {
		if err := run(ctx, cmd); err != nil {
			b.Fatal(err)
		}
	}
}
