package conformance

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// clientEscaped lists the code points sockjs-client sends as \uXXXX escapes,
// because browsers mangle them in XHR bodies (control and format characters,
// combining marks, characters with canonical decompositions, specials). The
// server must decode all of them.
var clientEscaped = [][2]rune{
	{0x0000, 0x001f}, {0x0022, 0x0022}, {0x007f, 0x009f}, {0x00ad, 0x00ad}, {0x0300, 0x0333}, {0x033d, 0x0346},
	{0x034a, 0x034c}, {0x0350, 0x0352}, {0x0357, 0x0358}, {0x035c, 0x0362}, {0x0374, 0x0374}, {0x037e, 0x037e},
	{0x0387, 0x0387}, {0x0591, 0x05af}, {0x05c4, 0x05c4}, {0x0600, 0x0604}, {0x0610, 0x0617}, {0x0653, 0x0654},
	{0x0657, 0x065b}, {0x065d, 0x065e}, {0x06df, 0x06e2}, {0x06eb, 0x06ec}, {0x070f, 0x070f}, {0x0730, 0x0730},
	{0x0732, 0x0733}, {0x0735, 0x0736}, {0x073a, 0x073a}, {0x073d, 0x073d}, {0x073f, 0x0741}, {0x0743, 0x0743},
	{0x0745, 0x0745}, {0x0747, 0x0747}, {0x07eb, 0x07f1}, {0x0951, 0x0951}, {0x0958, 0x095f}, {0x09dc, 0x09dd},
	{0x09df, 0x09df}, {0x0a33, 0x0a33}, {0x0a36, 0x0a36}, {0x0a59, 0x0a5b}, {0x0a5e, 0x0a5e}, {0x0b5c, 0x0b5d},
	{0x0e38, 0x0e39}, {0x0f43, 0x0f43}, {0x0f4d, 0x0f4d}, {0x0f52, 0x0f52}, {0x0f57, 0x0f57}, {0x0f5c, 0x0f5c},
	{0x0f69, 0x0f69}, {0x0f72, 0x0f76}, {0x0f78, 0x0f78}, {0x0f80, 0x0f83}, {0x0f93, 0x0f93}, {0x0f9d, 0x0f9d},
	{0x0fa2, 0x0fa2}, {0x0fa7, 0x0fa7}, {0x0fac, 0x0fac}, {0x0fb9, 0x0fb9}, {0x17b4, 0x17b5}, {0x1939, 0x193a},
	{0x1a17, 0x1a17}, {0x1b6b, 0x1b6b}, {0x1cda, 0x1cdb}, {0x1dc0, 0x1dcf}, {0x1dfc, 0x1dfc}, {0x1dfe, 0x1dfe},
	{0x1f71, 0x1f71}, {0x1f73, 0x1f73}, {0x1f75, 0x1f75}, {0x1f77, 0x1f77}, {0x1f79, 0x1f79}, {0x1f7b, 0x1f7b},
	{0x1f7d, 0x1f7d}, {0x1fbb, 0x1fbb}, {0x1fbe, 0x1fbe}, {0x1fc9, 0x1fc9}, {0x1fcb, 0x1fcb}, {0x1fd3, 0x1fd3},
	{0x1fdb, 0x1fdb}, {0x1fe3, 0x1fe3}, {0x1feb, 0x1feb}, {0x1fee, 0x1fef}, {0x1ff9, 0x1ff9}, {0x1ffb, 0x1ffb},
	{0x1ffd, 0x1ffd}, {0x2000, 0x20ff}, {0x2126, 0x2126}, {0x212a, 0x212b}, {0x2329, 0x232a}, {0x2adc, 0x2adc},
	{0x302b, 0x302c}, {0xaab2, 0xaab3}, {0xf900, 0xfa0d}, {0xfa10, 0xfa10}, {0xfa12, 0xfa12}, {0xfa15, 0xfa1e},
	{0xfa20, 0xfa20}, {0xfa22, 0xfa22}, {0xfa25, 0xfa26}, {0xfa2a, 0xfa2d}, {0xfa30, 0xfa6d}, {0xfa70, 0xfad9},
	{0xfb1d, 0xfb1d}, {0xfb1f, 0xfb1f}, {0xfb2a, 0xfb36}, {0xfb38, 0xfb3c}, {0xfb3e, 0xfb3e}, {0xfb40, 0xfb41},
	{0xfb43, 0xfb44}, {0xfb46, 0xfb4e}, {0xfeff, 0xfeff}, {0xfff0, 0xffff},
}

// serverEscaped lists the code points above U+00FF that the server must send
// as \uXXXX escapes: WebSocket and browsers mangle them otherwise.
var serverEscaped = [][2]rune{
	{0x200c, 0x200f}, {0x2028, 0x202f}, {0x2060, 0x206f}, {0xfff0, 0xffff},
}

// runesIn returns every code point of the ranges, in order.
func runesIn(ranges [][2]rune) []rune {
	var out []rune
	for _, r := range ranges {
		for c := r[0]; c <= r[1]; c++ {
			out = append(out, c)
		}
	}
	return out
}

func inRanges(c rune, ranges [][2]rune) bool {
	for _, r := range ranges {
		if c >= r[0] && c <= r[1] {
			return true
		}
	}
	return false
}

// escapeAll writes every rune as a lower-case \uXXXX escape.
func escapeAll(rs []rune) string {
	var b strings.Builder
	for _, c := range rs {
		fmt.Fprintf(&b, `\u%04x`, c)
	}
	return b.String()
}

// quoteLikeClient JSON-quotes s the way sockjs-client does before sending:
// standard JSON, plus \uXXXX for every client-escaped code point.
func quoteLikeClient(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case inRanges(c, clientEscaped):
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// encodeLikeClient builds a client→server frame: a JSON array of strings.
func encodeLikeClient(msgs []string) string {
	q := make([]string, len(msgs))
	for i, m := range msgs {
		q[i] = quoteLikeClient(m)
	}
	return "[" + strings.Join(q, ",") + "]"
}

// testJSONEncoding: unicode survives the trip in both directions, escaped
// where the protocol says so.
func (s *suite) testJSONEncoding(t *testing.T) {
	t.Run("server escapes the characters it must", func(t *testing.T) {
		u := s.sessionURL("/echo")
		wantBody(t, "open", s.post(t, u+"/xhr", "").body, "o\n")
		raw := string(runesIn(serverEscaped))
		wantStatus(t, "xhr_send", s.post(t, u+"/xhr_send", `["`+raw+`"]`).status, 204)
		r := s.post(t, u+"/xhr", "")
		wantStatus(t, "poll", r.status, 200)
		want := `a["` + escapeAll(runesIn(serverEscaped)) + `"]` + "\n"
		if r.body != want {
			t.Errorf("echo of server-escaped characters:\n got %s\nwant %s", clip(r.body), clip(want))
		}
	})
	t.Run("server decodes what the client escapes", func(t *testing.T) {
		u := s.sessionURL("/echo")
		wantBody(t, "open", s.post(t, u+"/xhr", "").body, "o\n")
		rs := runesIn(clientEscaped)
		wantStatus(t, "xhr_send", s.post(t, u+"/xhr_send", `["`+escapeAll(rs)+`"]`).status, 204)
		r := s.post(t, u+"/xhr", "")
		wantStatus(t, "poll", r.status, 200)
		var got []string
		body := strings.TrimSuffix(r.body, "\n")
		if !strings.HasPrefix(body, "a") || json.Unmarshal([]byte(body[1:]), &got) != nil || len(got) != 1 {
			t.Fatalf("poll: not an a[...] frame with one message: %s", clip(r.body))
		}
		if got[0] != string(rs) {
			t.Errorf("echo of client-escaped characters differs: got %d runes, want %d", len([]rune(got[0])), len(rs))
		}
	})
}
