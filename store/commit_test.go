package store_test

import (
	"testing"

	"github.com/shoal-rt/shoal/store"
	"github.com/shoal-rt/shoal/store/storetest"
)

func TestMemoryCommitter(t *testing.T) {
	storetest.RunCommitter(t, func(t *testing.T) store.Store { return store.NewMemory() })
}
