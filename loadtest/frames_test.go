package loadtest

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParseFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want frame
		bad  bool
	}{
		{in: "o", want: frame{kind: frameOpen}},
		{in: "h", want: frame{kind: frameHeartbeat}},
		{in: strings.Repeat("h", 2048), want: frame{kind: frameHeartbeat}},
		{in: `a["x","y\u2028"]`, want: frame{kind: frameArray, messages: []string{"x", "y\u2028"}}},
		{in: `m"z"`, want: frame{kind: frameMessage, messages: []string{"z"}}},
		{in: `c[3000,"Go away!"]`, want: frame{kind: frameClose, code: 3000, reason: "Go away!"}},
		{in: "", bad: true},
		{in: "a[", bad: true},
		{in: `a[1]`, bad: true},
		{in: `c[3000]`, bad: true},
		{in: `c["x","y"]`, bad: true},
		{in: "x", bad: true},
	}
	for _, tt := range tests {
		got, err := parseFrame([]byte(tt.in))
		if tt.bad {
			if !errors.Is(err, errBadFrame) {
				t.Errorf("parseFrame(%q) error = %v, want errBadFrame", tt.in, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseFrame(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestFrameReaderStreams(t *testing.T) {
	t.Parallel()
	xhr := strings.Repeat("h", 2048) + "\no\na[\"1\"]\nh\nc[3000,\"bye\"]\n"
	es := "\r\ndata: o\r\n\r\ndata: a[\"1\"]\r\n\r\ndata: h\r\n\r\ndata: c[3000,\"bye\"]\r\n\r\n"
	for name, tc := range map[string]struct {
		body string
		kind streamKind
	}{"xhr-streaming": {xhr, xhrStreamingKind}, "eventsource": {es, eventSourceKind}} {
		r := newFrameReader(strings.NewReader(tc.body), tc.kind)
		var kinds []frameKind
		for {
			f, err := r.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			kinds = append(kinds, f.kind)
		}
		want := []frameKind{frameOpen, frameArray, frameHeartbeat, frameClose}
		if name == "xhr-streaming" {
			want = append([]frameKind{frameHeartbeat}, want...) // the prelude
		}
		if !reflect.DeepEqual(kinds, want) {
			t.Errorf("%s frames = %q, want %q", name, kinds, want)
		}
	}
}

func TestFrameReaderBoundsLines(t *testing.T) {
	t.Parallel()
	r := newFrameReader(strings.NewReader("a[\""+strings.Repeat("x", maxFrameBytes+10)+"\"]\n"), xhrStreamingKind)
	if _, err := r.next(); !errors.Is(err, errBadFrame) {
		t.Errorf("an over-long line gave %v, want errBadFrame", err)
	}
}
