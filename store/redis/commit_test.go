package redisstore_test

import (
	"testing"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/store"
	redisstore "github.com/shoal-rt/shoal/store/redis"
	"github.com/shoal-rt/shoal/store/storetest"
)

func TestCommitter(t *testing.T) {
	client := newClient(t, testenv.Redis(t).Addr)
	storetest.RunCommitter(t, func(t *testing.T) store.Store {
		return redisstore.New(client, redisstore.Config{Prefix: testenv.Prefix(t)})
	})
}
