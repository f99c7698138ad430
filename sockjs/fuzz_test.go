package sockjs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"testing"
	"unicode/utf8"
)

// Fuzzers of the decoders of client input that other files do not fuzz:
// jsonp_send bodies, websocket frame headers, Hixie-76
// frames, and X-Forwarded-For. xhr_send bodies and websocket messages are
// FuzzDecodeFrame's (decode_test.go), the wire between nodes FuzzWire's,
// escaping FuzzEscape's. scripts/test runs each for a few seconds; seeds
// beyond the f.Add ones are in testdata/fuzz.

// FuzzJSONPBody: a form-encoded jsonp_send body decodes as its d field
// would on its own; a raw one as an xhr_send body.
func FuzzJSONPBody(f *testing.F) {
	for _, s := range []string{`d=%5B%22a%22%5D`, `d=["x","y"]`, `d=`, `x=1`, `d=%zz`, `["raw"]`, `d=["a"]&d=["b"]`} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, form bool) {
		r := httptest.NewRequest("POST", "/p/0/s/jsonp_send", bytes.NewReader(body))
		if form {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
		}
		msgs, err := decodeFormOrJSON(r, body)
		if err != nil && !errors.Is(err, errBrokenJSON) && !errors.Is(err, errPayloadExpected) {
			t.Fatalf("%q: unexpected error %v", body, err)
		}
		inner := body
		if form {
			vals, perr := url.ParseQuery(string(body))
			if perr != nil || vals.Get("d") == "" {
				if err == nil {
					t.Fatalf("%q: accepted without a d field", body)
				}
				return
			}
			inner = []byte(vals.Get("d"))
		}
		want, werr := decodeMessages(inner)
		if (err == nil) != (werr == nil) || !slices.Equal(msgs, want) {
			t.Fatalf("%q (form %v): %q, %v; its payload alone: %q, %v", body, form, msgs, err, want, werr)
		}
	})
}

// frameHeaderTooBig is an independent reading of what readHeader must
// refuse: the offset and size of the first data frame header announcing
// more than limit bytes; -1 if there is none. ends are the offsets where
// the whole frames before it end.
func frameHeaderTooBig(b []byte, limit int64) (at, size int, ends []int) {
	for i := 0; i < len(b); {
		if len(b)-i < 2 {
			return -1, 0, ends
		}
		n, size := uint64(b[i+1]&0x7f), 2
		switch n {
		case 126:
			if len(b)-i < 4 {
				return -1, 0, ends
			}
			n, size = uint64(binary.BigEndian.Uint16(b[i+2:])), 4
		case 127:
			if len(b)-i < 10 {
				return -1, 0, ends
			}
			n, size = binary.BigEndian.Uint64(b[i+2:]), 10
		}
		if b[i+1]&0x80 != 0 {
			size += 4
		}
		if len(b)-i < size {
			return -1, 0, ends
		}
		if b[i]&0x0f < 8 && n > uint64(limit) || n > 1<<62 {
			return i, size, ends
		}
		if n > uint64(len(b)-i-size) {
			return -1, 0, ends
		}
		i += size + int(n)
		ends = append(ends, i)
	}
	return -1, 0, ends
}

// FuzzRFC6455Headers: reading a client's frames, however their bytes
// arrive, each header ends where an independent reading says, and the
// first data frame header announcing more than the limit is refused once
// read, before any of its payload, whatever else is wrong with it.
func FuzzRFC6455Headers(f *testing.F) {
	f.Add([]byte("\x81\x83\x01\x02\x03\x04abc\x88\x80\x00\x00\x00\x00"), int64(16), uint8(1))
	f.Add([]byte("\x82\xfe\x01\x00\x00\x00\x00\x00"), int64(255), uint8(3))
	f.Add([]byte("\x81\xff\x40\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04"), int64(1<<20), uint8(7))
	f.Add([]byte("\x89\x7e\x00\x10"), int64(4), uint8(2))
	f.Add([]byte("\x01\x7f\x00\x00\x00\x00\x00\x00\x01\x00"), int64(255), uint8(5))
	f.Fuzz(func(t *testing.T, in []byte, limit int64, chunk uint8) {
		if limit <= 0 {
			limit = 1
		}
		socket := &chunkReader{b: in, step: int(chunk%16) + 1}
		c := &rfc6455Conn{in: stashReader{r: socket}, limit: limit}
		read := func() int { return len(in) - len(socket.b) - len(c.in.stash) }
		refuse, size, ends := frameHeaderTooBig(in, limit)
		// Payloads are skipped in reads smaller than a chunk (through the
		// pooled chunk) or bigger (straight from the socket).
		buf := make([]byte, []int{16, 64, 2 * wsReadChunk}[int(chunk/16)%3])
		for frame := 0; ; frame++ {
			at := read()
			h, err := c.readHeader()
			if at == refuse {
				if !errors.Is(err, errMessageTooBig) || read() != refuse+size {
					t.Fatalf("%x (limit %d): the header at %d: %v, %d bytes read; want refused after %d", in, limit, at, err, read(), refuse+size)
				}
				return
			}
			if errors.Is(err, errMessageTooBig) {
				t.Fatalf("%x (limit %d): the header at %d refused", in, limit, at)
			}
			if err != nil && !errors.Is(err, errProtocol) {
				return // the end of the bytes: checked where the frames before it ended
			}
			for left := h.length; left > 0; {
				n, err := c.in.Read(buf[:min(uint64(len(buf)), left)])
				if err != nil {
					return
				}
				left -= uint64(n)
			}
			if frame >= len(ends) || read() != ends[frame] {
				t.Fatalf("%x (limit %d): frame %d ends at %d; want the ends %v", in, limit, frame, read(), ends)
			}
		}
	})
}

// chunkReader hands out b step bytes at a time.
type chunkReader struct {
	b    []byte
	step int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.step)], c.b)
	c.b = c.b[n:]
	return n, nil
}

// FuzzHixieFrames: Hixie-76 framing never yields a message over the limit
// or one that is not UTF-8, and never panics.
func FuzzHixieFrames(f *testing.F) {
	f.Add([]byte("\x00[\"a\"]\xff\x00x\xff"))
	f.Add([]byte("\x80\x05hello\xff\x00"))
	f.Add([]byte("\x00\xc3\x28\xff"))
	f.Add([]byte("\x81\xff\xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 64
		c := &hixieConn{br: bufio.NewReaderSize(bytes.NewReader(in), 16), limit: limit}
		for range len(in) + 1 {
			msg, err := c.readMessage()
			if err != nil {
				return
			}
			if len(msg) > limit || !utf8.Valid(msg) {
				t.Fatalf("%x: message %q passed", in, msg)
			}
		}
		t.Fatalf("%x: more messages than bytes", in)
	})
}

// FuzzClientIP: whatever X-Forwarded-For says, the client address is the
// peer's or an address of the header, and only a trusted peer's header
// counts.
func FuzzClientIP(f *testing.F) {
	f.Add("203.0.113.9", "10.0.0.1:1234")
	f.Add("198.51.100.1, 203.0.113.9, 10.1.2.3", "127.0.0.1:80")
	f.Add("garbage,, ::ffff:1.2.3.4", "[::1]:5")
	f.Add("2001:db8::1", "192.0.2.1:9")
	f.Fuzz(func(t *testing.T, xff, peer string) {
		n := &Node{cfg: NodeConfig{TrustedProxies: []netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128"),
		}}}
		r := &http.Request{RemoteAddr: peer, Header: http.Header{"X-Forwarded-For": {xff}}}
		got := n.clientIP(r)
		p := peerIP(r)
		addr, err := netip.ParseAddr(p)
		if err != nil || !n.trusted(addr) {
			if got != p {
				t.Fatalf("untrusted peer %q with X-Forwarded-For %q: %q", peer, xff, got)
			}
			return
		}
		if _, err := netip.ParseAddr(got); err != nil {
			t.Fatalf("peer %q, X-Forwarded-For %q: %q is not an address", peer, xff, got)
		}
	})
}
