package sockjs

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeMessages(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want []string
		err  error
	}{
		{`["a"]`, []string{"a"}, nil},
		{` [ "a" , "b" ] `, []string{"a", "b"}, nil},
		{`[]`, nil, nil},
		{`["\u0000\n\r \"\\\/"]`, []string{"\x00\n\r \"\\/"}, nil},
		{`["\ud83d\ude00"]`, []string{"😀"}, nil},
		{`["\ud800"]`, []string{"\xed\xa0\x80"}, nil},
		{`["\udc00\ud800x"]`, []string{"\xed\xb0\x80\xed\xa0\x80x"}, nil},
		{`[1, -2.5e3, true, null, {"a":[1,{}]}, []]`, []string{"1", "-2.5e3", "true", "null", `{"a":[1,{}]}`, "[]"}, nil},
		{"[\"a\xffb\"]", []string{"a\uFFFDb"}, nil},
		{``, nil, errPayloadExpected},
		{`  `, nil, errPayloadExpected},
		{`"x"`, nil, errPayloadExpected},
		{`null`, nil, errPayloadExpected},
		{`{}`, nil, errPayloadExpected},
		{`["x`, nil, errBrokenJSON},
		{`["x"`, nil, errBrokenJSON},
		{`["x",]`, nil, errBrokenJSON},
		{`["x"]x`, nil, errBrokenJSON},
		{"[\"a\nb\"]", nil, errBrokenJSON},
		{`["\x"]`, nil, errBrokenJSON},
		{`["\u12"]`, nil, errBrokenJSON},
		{`[01]`, nil, errBrokenJSON},
		{`[tru]`, nil, errBrokenJSON},
		{`[{"a"}]`, nil, errBrokenJSON},
		{`"x`, nil, errBrokenJSON},
		{strings.Repeat("[", 200) + strings.Repeat("]", 200), nil, errBrokenJSON},
	}
	for _, c := range cases {
		got, err := decodeMessages([]byte(c.in))
		if err != c.err || !reflect.DeepEqual(got, c.want) {
			t.Errorf("decodeMessages(%q) = %q, %v; want %q, %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestDecodeWebsocketMessages(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want []string
		ok   bool
	}{
		{``, nil, true},
		{`["a","b"]`, []string{"a", "b"}, true},
		{`"a"`, []string{"a"}, true},
		{`42`, []string{"42"}, true},
		{`["a`, nil, false},
		{`"a" "b"`, nil, false},
	}
	for _, c := range cases {
		got, err := decodeWebsocketMessages([]byte(c.in), nil)
		if (err == nil) != c.ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("decodeWebsocketMessages(%q) = %q, %v", c.in, got, err)
		}
	}
}

// FuzzDecodeFrame checks the incoming-body decoder against encoding/json:
// it never panics, accepts exactly the JSON arrays encoding/json accepts
// (bounded nesting aside), and decodes their strings the same way.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{`["a"]`, `["a","\u2028"]`, `[1,{"a":null}]`, `["\ud800"]`, `["x`, `[]`, `"x"`, "[\"\xff\"]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := decodeMessages(body)
		_, _ = decodeWebsocketMessages(body, nil)
		var ref []json.RawMessage
		refErr := json.Unmarshal(body, &ref)
		if err == nil && refErr != nil {
			t.Fatalf("accepted %q that encoding/json rejects: %v", body, refErr)
		}
		if err != nil {
			if refErr == nil && ref != nil && err != errBrokenJSON {
				t.Fatalf("rejected JSON array %q: %v", body, err)
			}
			return
		}
		if len(msgs) != len(ref) {
			t.Fatalf("%q: %d messages, encoding/json %d", body, len(msgs), len(ref))
		}
		for i, raw := range ref {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				continue // non-string value, passed on as JSON text
			}
			if !strings.Contains(string(raw), `\u`) && msgs[i] != s {
				t.Fatalf("%q: message %d = %q, encoding/json %q", body, i, msgs[i], s)
			}
		}
	})
}

func BenchmarkDecodeMessages(b *testing.B) {
	body, _ := json.Marshal([]string{benchMessages["ascii"], benchMessages["unicode"], benchMessages["escapes"]})
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodeMessages(body); err != nil {
			b.Fatal(err)
		}
	}
}
