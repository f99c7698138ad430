package store_test

import (
	"testing"

	"github.com/shoal-rt/shoal/store"
	"github.com/shoal-rt/shoal/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory() })
}
