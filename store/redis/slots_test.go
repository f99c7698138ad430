package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/store"
	"github.com/shoal-rt/shoal/store/storetest"
)

// TestScriptKeysShareASlot runs every storetest suite with every script
// call recorded, and checks that the keys of each call hash to one Redis
// Cluster slot (a script over two slots fails on Cluster with CROSSSLOT),
// and that every script of the package was called, so none escapes the
// check. docs/keys.md explains the layout it proves.
func TestScriptKeysShareASlot(t *testing.T) {
	rec := &keyRecorder{calls: map[string][][]string{}}
	client := redis.NewClient(&redis.Options{Addr: testenv.Redis(t).Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	client.AddHook(rec)
	newStore := func(t *testing.T) *Store { return New(client, Config{Prefix: testenv.Prefix(t)}) }
	t.Run("suites", func(t *testing.T) {
		storetest.RunAll(t, func(t *testing.T) store.Store { return newStore(t) })
	})

	scripts := map[string]*redis.Script{
		"create": createScript, "get": getScript, "attach": attachScript, "renew": renewScript,
		"detach": detachScript, "append": appendScript, "drain": drainScript, "close": closeScript,
		"reap": reapScript, "set_attr": setAttrScript, "attr": attrScript, "release_node": releaseScript,
		"join_channel": joinChannelScript, "subscribe": subscribeScript, "unsubscribe": unsubscribeScript,
		"unsubscribe_all": unsubscribeAllScript, "subscriptions": subscriptionsScript,
		"set_cursors": setCursorsScript, "append_channel": appendChannelScript, "read_channel": readChannelScript,
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(scripts)) {
		calls := rec.calls[scripts[name].Hash()]
		if len(calls) == 0 {
			t.Errorf("script %s was never called by the suites: its keys are unchecked", name)
			continue
		}
		for _, keys := range calls {
			if len(keys) == 0 {
				continue
			}
			want := slot(keys[0])
			for _, k := range keys[1:] {
				if slot(k) != want {
					t.Errorf("script %s: keys %v span slots (%s in %d, %s in %d)", name, keys, keys[0], want, k, slot(k))
					break
				}
			}
		}
		t.Logf("%-16s %5d calls, keys e.g. %v (slot %d)", name, len(calls), calls[0], slot(calls[0][0]))
	}
}

// TestSlot pins the slot function to Redis's own (CLUSTER KEYSLOT values
// as a Redis 7 server in cluster mode answers them).
func TestSlot(t *testing.T) {
	for key, want := range map[string]int{
		"123456789": 12739, "foo": 12182, "{user1000}.following": 3443, "{user1000}.followers": 3443,
		"foo{}{bar}": 8363, "foo{{bar}}zap": 4015, "foo{bar}{zap}": 5061,
	} {
		if got := slot(key); got != want {
			t.Errorf("slot(%q) = %d, want %d", key, got, want)
		}
	}
}

// keyRecorder records the keys of every EVAL and EVALSHA, by script hash.
type keyRecorder struct {
	mu    sync.Mutex
	calls map[string][][]string
}

func (r *keyRecorder) record(cmd redis.Cmder) {
	args := cmd.Args()
	name := strings.ToLower(cmd.Name())
	if (name != "evalsha" && name != "eval") || len(args) < 3 {
		return
	}
	hash := fmt.Sprint(args[1])
	if name == "eval" {
		sum := sha1.Sum([]byte(hash))
		hash = hex.EncodeToString(sum[:])
	}
	var n int
	fmt.Sscan(fmt.Sprint(args[2]), &n)
	keys := make([]string, 0, n)
	for _, k := range args[3:min(len(args), 3+n)] {
		keys = append(keys, fmt.Sprint(k))
	}
	r.mu.Lock()
	r.calls[hash] = append(r.calls[hash], keys)
	r.mu.Unlock()
}

func (r *keyRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *keyRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.record(cmd)
		return next(ctx, cmd)
	}
}
func (r *keyRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			r.record(c)
		}
		return next(ctx, cmds)
	}
}

// slot is Redis Cluster's key slot: CRC16 (XMODEM) of the key's hash tag
// (the part between the first '{' and the next '}', when not empty) or of
// the whole key, modulo 16384.
func slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
