package conformance

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"testing"
)

// These check the suite's own helpers, without a server.

func TestDecodeURI(t *testing.T) {
	cases := []struct {
		in, want string
		bad      bool
	}{
		{in: "plain", want: "plain"},
		{in: "%2520", want: "%20"},
		{in: "%25", want: "%"},
		{in: "a%0Db%0Ac%00", want: "a\rb\nc\x00"},
		{in: "%C3%BF", want: "\u00ff"},
		{in: "%F0%9F%98%80", want: "😀"},
		{in: "%23%2F%3F", want: "%23%2F%3F"}, // reserved characters stay escaped
		{in: "%", bad: true},
		{in: "%zz", bad: true},
		{in: "%C3", bad: true},
		{in: "%FF", bad: true},
	}
	for _, c := range cases {
		got, err := decodeURI(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("decodeURI(%q) = %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("decodeURI(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestHixie76Digest(t *testing.T) {
	// The handshake example of draft-hixie-thewebsocketprotocol-76.
	var ch [16]byte
	binary.BigEndian.PutUint32(ch[0:], hixie76Key("18x 6]8vM;54 *(5:  {   U1]8  z [  8"))
	binary.BigEndian.PutUint32(ch[4:], hixie76Key("1_ tx7X d  <  nw  334J702) 7]o}` 0"))
	copy(ch[8:], "Tm[K T2u")
	if got := md5.Sum(ch[:]); string(got[:]) != "fQJ,fN/4F4!~K~MH" {
		t.Errorf("digest %q, want %q", got, "fQJ,fN/4F4!~K~MH")
	}
}

func TestParseFrame(t *testing.T) {
	good := map[string]frame{
		"o":                  {typ: 'o'},
		"h":                  {typ: 'h'},
		"hhhh":               {typ: 'h'},
		`a["x","y"]`:         {typ: 'a', msgs: []string{"x", "y"}},
		`c[3000,"Go away!"]`: {typ: 'c', code: 3000, reason: "Go away!"},
		`c[2010,"Another connection still open"]`: {typ: 'c', code: 2010, reason: "Another connection still open"},
	}
	for in, want := range good {
		got, err := parseFrame(in)
		if err != nil || got.typ != want.typ || got.code != want.code || got.reason != want.reason || len(got.msgs) != len(want.msgs) {
			t.Errorf("parseFrame(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "oo", "hx", "a[", `a[1]`, "c[1]", `c["x",1]`, "z"} {
		if f, err := parseFrame(in); err == nil {
			t.Errorf("parseFrame(%q) = %+v, want an error", in, f)
		}
	}
}

func TestQuoteLikeClientRoundTrips(t *testing.T) {
	for _, s := range append(append([]string{latin1Block(), string(runesIn(clientEscaped))}, unicodeSamples...), specialChars...) {
		q := quoteLikeClient(s)
		var back string
		if err := json.Unmarshal([]byte(q), &back); err != nil || back != s {
			t.Errorf("quoteLikeClient(%q) = %s does not decode back (%v)", clip(s), clip(q), err)
		}
		for _, r := range q {
			if inRanges(r, clientEscaped) && r != '"' {
				t.Errorf("quoteLikeClient left %U unescaped", r)
				break
			}
		}
	}
}
