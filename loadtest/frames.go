package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
)

// frameKind is the first byte of a SockJS frame.
type frameKind byte

const (
	frameOpen      frameKind = 'o'
	frameHeartbeat frameKind = 'h'
	frameArray     frameKind = 'a'
	frameMessage   frameKind = 'm'
	frameClose     frameKind = 'c'
)

// errBadFrame reports a frame the client cannot parse.
var errBadFrame = errors.New("loadtest: malformed SockJS frame")

// frame is one parsed SockJS frame.
type frame struct {
	kind     frameKind
	messages []string // for 'a' and 'm'
	code     int      // for 'c'
	reason   string   // for 'c'
}

// parseFrame parses one SockJS frame without its transport's terminator.
func parseFrame(b []byte) (frame, error) {
	if len(b) == 0 {
		return frame{}, fmt.Errorf("%w: empty", errBadFrame)
	}
	f := frame{kind: frameKind(b[0])}
	switch f.kind {
	case frameOpen, frameHeartbeat:
		// The xhr-streaming prelude is a long run of 'h': a heartbeat too.
		return f, nil
	case frameArray:
		if err := json.Unmarshal(b[1:], &f.messages); err != nil {
			return frame{}, fmt.Errorf("%w: %w", errBadFrame, err)
		}
		return f, nil
	case frameMessage:
		var m string
		if err := json.Unmarshal(b[1:], &m); err != nil {
			return frame{}, fmt.Errorf("%w: %w", errBadFrame, err)
		}
		f.messages = []string{m}
		return f, nil
	case frameClose:
		var cr []json.RawMessage
		if err := json.Unmarshal(b[1:], &cr); err != nil || len(cr) != 2 {
			return frame{}, fmt.Errorf("%w: close frame %q", errBadFrame, truncate(b, 64))
		}
		if json.Unmarshal(cr[0], &f.code) != nil || json.Unmarshal(cr[1], &f.reason) != nil {
			return frame{}, fmt.Errorf("%w: close frame %q", errBadFrame, truncate(b, 64))
		}
		return f, nil
	}
	return frame{}, fmt.Errorf("%w: unknown frame %q", errBadFrame, truncate(b, 64))
}

// encodeMessages encodes messages as the JSON array every SockJS send takes.
func encodeMessages(msgs []string) []byte {
	b, _ := json.Marshal(msgs) // strings always marshal
	return b
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
