package store_test

import (
	"testing"

	"github.com/shoal-rt/shoal/store"
	"github.com/shoal-rt/shoal/store/storetest"
)

func TestMemoryLeaseTaker(t *testing.T) {
	storetest.RunLeaseTaker(t, func(t *testing.T) store.Store { return store.NewMemory() })
}
