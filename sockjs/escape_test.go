package sockjs

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

func TestAppendQuoted(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"", `""`},
		{"abc", `"abc"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"\x00\n\r\t\x1f\x7f", `"\u0000\n\r\t\u001f\u007f"`},
		{"é ü", `"é ü"`},
		{"\u0080\u009f\u00a0\u00ad", `"\u0080\u009f` + "\u00a0" + `\u00ad"`},
		{"\u0600\u0604\u0605\u070f", `"\u0600\u0604` + "\u0605" + `\u070f"`},
		{"\u17b4\u17b5\u17b6", `"\u17b4\u17b5` + "\u17b6" + `"`},
		{"\u200b\u200c\u200f\u2010", `"` + "\u200b" + `\u200c\u200f` + "\u2010" + `"`},
		{"\u2027\u2028\u202f\u2030", `"` + "\u2027" + `\u2028\u202f` + "\u2030" + `"`},
		{"\u2060\u206f\u2070", `"\u2060\u206f` + "\u2070" + `"`},
		{"\ufeff\uffef\ufff0\uffff", `"\ufeff` + "\uffef" + `\ufff0\uffff"`},
		{"😀", `"😀"`},
		{"a\xffb", `"a\ufffdb"`},
		{"\xed\xa0\x80x\xed\xbf\xbf", `"\ud800x\udfff"`},
	}
	for _, c := range cases {
		if got := string(appendQuoted(nil, c.in)); got != c.want {
			t.Errorf("appendQuoted(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// The protocol suite's "server killer string": every character from U+00FF
// up that the server must escape comes back escaped.
func TestAppendQuotedServerKillerString(t *testing.T) {
	t.Parallel()
	var in strings.Builder
	var want strings.Builder
	want.WriteByte('"')
	for r := rune(0xff); r < 0x10000; r++ {
		if (r >= 0x200c && r <= 0x200f) || (r >= 0x2028 && r <= 0x202f) ||
			(r >= 0x2060 && r <= 0x206f) || r >= 0xfff0 {
			in.WriteRune(r)
			want.WriteString(string(appendUnicodeEscape(nil, r)))
		}
	}
	want.WriteByte('"')
	if got := string(appendQuoted(nil, in.String())); got != want.String() {
		t.Fatalf("killer string not escaped:\n got %s\nwant %s", got, want.String())
	}
}

func TestAppendJSString(t *testing.T) {
	t.Parallel()
	got := string(appendJSString(nil, `a["x</script>&",1]`))
	want := `"a[\"x\u003c/script\u003e\u0026\",1]"`
	if got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

func TestFrames(t *testing.T) {
	t.Parallel()
	if got := string(appendMessageFrame(nil, []string{"a", "b\"c"})); got != `a["a","b\"c"]` {
		t.Errorf("message frame %s", got)
	}
	if got := string(appendMessageFrame(nil, nil)); got != `a[]` {
		t.Errorf("empty message frame %s", got)
	}
	if got := string(closeFrame(3000, "Go away!")); got != `c[3000,"Go away!"]` {
		t.Errorf("close frame %s", got)
	}
}

// FuzzEscape checks that appendQuoted always yields a JSON string that
// decodes back to the input (modulo invalid UTF-8, which becomes U+FFFD,
// and WTF-8 surrogates, which round-trip through our own decoder).
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "abc", "\x00\u2028\ufeff", "a\xffb", "\xed\xa0\x80", "😀\"\\",
		"0\xed\xa2\xa2\xed\xb7\xb7", "\xed\xb7\xb7\xed\xa2\xa2", "\xed\xa2\xa2\xed\xa2\xa2\xed\xb7\xb7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := appendQuoted(nil, s)
		if !utf8.Valid(q) {
			t.Fatalf("output not valid UTF-8: %q", q)
		}
		for _, r := range string(q) {
			if r != '"' && r != '\\' && escapableRune(r) {
				t.Fatalf("escapable rune %U left raw in %q", r, q)
			}
		}
		var back string
		if err := json.Unmarshal(q, &back); err != nil {
			t.Fatalf("output %q is not JSON: %v", q, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("round trip: %q -> %s -> %q", s, q, back)
		}
		// Our decoder restores lone surrogates too.
		d := decoder{buf: q}
		got, err := d.str()
		if err != nil {
			t.Fatalf("decoder rejects %q: %v", q, err)
		}
		if want := sanitizeWTF8(s); got != want {
			t.Fatalf("own round trip: %q -> %s -> %q, want %q", s, q, got, want)
		}
		// What went over the wire comes back as the same frame.
		if q2 := appendQuoted(nil, got); string(q2) != string(q) {
			t.Fatalf("wire round trip: %q -> %s -> %q -> %s", s, q, got, q2)
		}
	})
}

// sanitizeWTF8 is what appendQuoted+decoder.str preserve of s: valid UTF-8
// and lone WTF-8 surrogates; a WTF-8 high surrogate followed by a low one
// as the character the pair stands for (in UTF-16 they are that
// character); every other invalid byte as U+FFFD.
func sanitizeWTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			if hi, ok := wtf8Surrogate(s[i:]); ok {
				if lo, ok := wtf8Surrogate(s[i+3:]); ok && hi < 0xdc00 && lo >= 0xdc00 {
					b.WriteRune(utf16.DecodeRune(hi, lo))
					i += 6
					continue
				}
				b.WriteString(s[i : i+3])
				i += 3
				continue
			}
			b.WriteRune(utf8.RuneError)
			i++
			continue
		}
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}

var benchMessages = map[string]string{
	"ascii":   strings.Repeat("hello world, this is a chat message. ", 4),
	"unicode": strings.Repeat("żółć 日本語 😀 ", 8),
	"escapes": strings.Repeat("line\n\"quoted\"\u2028", 8),
}

func BenchmarkAppendQuoted(b *testing.B) {
	for name, msg := range benchMessages {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			buf := make([]byte, 0, 4*len(msg))
			for b.Loop() {
				buf = appendQuoted(buf[:0], msg)
			}
		})
	}
}

func BenchmarkAppendMessageFrame(b *testing.B) {
	msgs := []string{benchMessages["ascii"], benchMessages["unicode"], "short"}
	size := 0
	for _, m := range msgs {
		size += len(m)
	}
	b.ReportAllocs()
	b.SetBytes(int64(size))
	buf := make([]byte, 0, 4*size)
	for b.Loop() {
		buf = appendMessageFrame(buf[:0], msgs)
	}
}

// BenchmarkEncodingJSON is the baseline appendQuoted is measured against.
func BenchmarkEncodingJSON(b *testing.B) {
	msg := benchMessages["ascii"]
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := json.Marshal(msg); err != nil {
			b.Fatal(err)
		}
	}
}
