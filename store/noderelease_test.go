package store_test

import (
	"testing"

	"github.com/shoal-rt/shoal/store"
	"github.com/shoal-rt/shoal/store/storetest"
)

func TestMemoryNodeReleaser(t *testing.T) {
	storetest.RunNodeReleaser(t, func(t *testing.T) store.Store { return store.NewMemory() })
}
