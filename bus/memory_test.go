package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/bus"
)

func TestMemorySmoke(t *testing.T) {
	m := bus.NewMemory()
	defer m.Close()
	got := make(chan []byte, 1)
	cancel, err := m.ListenNode("n1", func(msg []byte) { got <- msg })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	if err := m.SendNode(context.Background(), "n1", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-got:
		if string(msg) != "hi" {
			t.Fatalf("got %q", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
}
