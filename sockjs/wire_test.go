package sockjs

import (
	"slices"
	"testing"
)

func TestFramesEnvelope(t *testing.T) {
	t.Parallel()
	env := appendFramesEnvelope(nil, "/t/k", []string{"a", "", "ü"})
	key, msgs, ok := decodeFramesEnvelope(env[1:])
	if !ok || key != "/t/k" || len(msgs) != 3 || msgs[2] != "ü" {
		t.Fatalf("round trip: %q %q %v", key, msgs, ok)
	}
	for i := range len(env) - 1 {
		key, got, ok := decodeFramesEnvelope(env[1 : 1+i])
		if !ok {
			continue
		}
		// A cut between messages decodes to fewer of them, never to
		// different ones.
		if key != "/t/k" || len(got) > len(msgs) || !slices.Equal(got, msgs[:len(got)]) {
			t.Fatalf("truncated envelope (%d bytes): %q %q", i, key, got)
		}
	}
}

func TestWireRoundTrips(t *testing.T) {
	t.Parallel()
	op, key, channel, cursor, ok := decodeNote(encodeNote(noteUnsubscribe, "/p/s", "room", 1<<40)[1:])
	if !ok || op != noteUnsubscribe || key != "/p/s" || channel != "room" || cursor != 1<<40 {
		t.Fatalf("note: %c %q %q %d %v", op, key, channel, cursor, ok)
	}
	off, entry, ok := decodeBusEntry(encodeBusEntry(300, encodeEntry("/p/x", "hi")))
	if !ok || off != 300 {
		t.Fatalf("bus entry: %d %v", off, ok)
	}
	except, msg, ok := decodeEntry(entry)
	if !ok || except != "/p/x" || msg != "hi" {
		t.Fatalf("entry: %q %q %v", except, msg, ok)
	}
	// An overlong uvarint (11 bytes) is refused, not wrapped.
	if _, _, ok := decodeBusEntry([]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")); ok {
		t.Fatal("overlong uvarint accepted")
	}
	node, key, id, ok := decodeAsk(appendAskEnvelope(nil, "n1", "/p/s", 1<<33)[1:])
	if !ok || node != "n1" || key != "/p/s" || id != 1<<33 {
		t.Fatalf("ask: %q %q %d %v", node, key, id, ok)
	}
	for _, st := range []holderState{holderGone, holderServing, holderFinishing} {
		if id, got, ok := decodeAnswer(appendAnswerEnvelope(nil, 5, st)[1:]); !ok || id != 5 || got != st {
			t.Fatalf("answer %d: %d %v %v", st, id, got, ok)
		}
	}
	if _, _, ok := decodeAnswer([]byte{5, 3}); ok {
		t.Fatal("answer 3 decoded")
	}
	key, token, batch, msgs, ok := decodeHandOffEnvelope(appendHandOffEnvelope(nil, "/p/s", "tok", 1<<35, []string{"a", ""})[1:])
	if !ok || key != "/p/s" || token != "tok" || batch != 1<<35 || !slices.Equal(msgs, []string{"a", ""}) {
		t.Fatalf("hand-off: %q %q %d %q %v", key, token, batch, msgs, ok)
	}
	if _, _, _, _, ok := decodeNote([]byte("x\x01k\x01c\x00")); ok {
		t.Fatal("note with an unknown op accepted")
	}
}

// FuzzWire feeds arbitrary bytes to every decoder of the node-to-node
// wire: none may panic, and whatever one accepts encodes back to a message
// that decodes to the same values.
func FuzzWire(f *testing.F) {
	f.Add(appendFramesEnvelope(nil, "/t/k", []string{"a", "", "ü"})[1:])
	f.Add(encodeNote(noteSubscribe, "/p/s", "room", 7)[1:])
	f.Add(encodeBusEntry(12, encodeEntry("/p/x", "msg")))
	f.Add(appendAskEnvelope(nil, "node", "/p/s", 9)[1:])
	f.Add(appendHandOffEnvelope(nil, "/t/k", "tok", 3, []string{"a", "ü"})[1:])
	f.Add(appendAnswerEnvelope(nil, 9, holderFinishing)[1:])
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if key, msgs, ok := decodeFramesEnvelope(b); ok {
			k2, m2, ok2 := decodeFramesEnvelope(appendFramesEnvelope(nil, key, msgs)[1:])
			if !ok2 || k2 != key || !slices.Equal(m2, msgs) {
				t.Fatalf("frames: %q %q → %q %q %v", key, msgs, k2, m2, ok2)
			}
		}
		if key, token, batch, msgs, ok := decodeHandOffEnvelope(b); ok {
			k2, t2, b2, m2, ok2 := decodeHandOffEnvelope(appendHandOffEnvelope(nil, key, token, batch, msgs)[1:])
			if !ok2 || k2 != key || t2 != token || b2 != batch || !slices.Equal(m2, msgs) {
				t.Fatalf("hand-off: %q %q %d %q → %q %q %d %q %v", key, token, batch, msgs, k2, t2, b2, m2, ok2)
			}
		}
		if op, key, channel, cursor, ok := decodeNote(b); ok {
			op2, k2, c2, cur2, ok2 := decodeNote(encodeNote(op, key, channel, cursor)[1:])
			if !ok2 || op2 != op || k2 != key || c2 != channel || cur2 != cursor {
				t.Fatalf("note: %c %q %q %d → %c %q %q %d %v", op, key, channel, cursor, op2, k2, c2, cur2, ok2)
			}
		}
		if off, entry, ok := decodeBusEntry(b); ok {
			off2, e2, ok2 := decodeBusEntry(encodeBusEntry(off, entry))
			if !ok2 || off2 != off || e2 != entry {
				t.Fatalf("bus entry: %d %q → %d %q %v", off, entry, off2, e2, ok2)
			}
		}
		if node, key, id, ok := decodeAsk(b); ok {
			n2, k2, id2, ok2 := decodeAsk(appendAskEnvelope(nil, node, key, id)[1:])
			if !ok2 || n2 != node || k2 != key || id2 != id {
				t.Fatalf("ask: %q %q %d → %q %q %d %v", node, key, id, n2, k2, id2, ok2)
			}
		}
		if id, serving, ok := decodeAnswer(b); ok {
			id2, s2, ok2 := decodeAnswer(appendAnswerEnvelope(nil, id, serving)[1:])
			if !ok2 || id2 != id || s2 != serving {
				t.Fatalf("answer: %d %v → %d %v %v", id, serving, id2, s2, ok2)
			}
		}
		if except, msg, ok := decodeEntry(string(b)); ok {
			x2, m2, ok2 := decodeEntry(encodeEntry(except, msg))
			if !ok2 || x2 != except || m2 != msg {
				t.Fatalf("entry: %q %q → %q %q %v", except, msg, x2, m2, ok2)
			}
		}
	})
}

// BenchmarkFramesEnvelope: a message for a websocket held on another node,
// encoded by the sender and decoded by the holder.
func BenchmarkFramesEnvelope(b *testing.B) {
	msgs := []string{`{"data_type":"data","channel":"room","offset":12,"data":"hello"}`}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendFramesEnvelope(buf[:0], "/echo/01M8HWXKTSEJKBQXE0C32CT0Q3", msgs)
		if _, _, ok := decodeFramesEnvelope(buf[1:]); !ok {
			b.Fatal("decode failed")
		}
	}
}

// BenchmarkBusEntry: a channel message as every node with subscribers
// decodes it.
func BenchmarkBusEntry(b *testing.B) {
	msg := encodeBusEntry(123456, encodeEntry("/echo/01M8HWXKTSEJKBQXE0C32CT0Q3", `{"text":"hello"}`))
	b.ReportAllocs()
	for b.Loop() {
		_, entry, ok := decodeBusEntry(msg)
		if !ok {
			b.Fatal("decode failed")
		}
		if _, _, ok := decodeEntry(entry); !ok {
			b.Fatal("decode failed")
		}
	}
}
