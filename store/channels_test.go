package store_test

import (
	"testing"

	"github.com/shoal-rt/shoal/store"
	"github.com/shoal-rt/shoal/store/storetest"
)

func TestMemoryChannels(t *testing.T) {
	storetest.RunChannels(t, func(t *testing.T) storetest.ChannelStore { return store.NewMemory() })
}
