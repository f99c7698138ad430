package sockjs

import (
	"unicode/utf16"
	"unicode/utf8"
)

// asciiSafe[b] is true for ASCII bytes that go into a JSON string verbatim.
// Control characters, DEL (the protocol escapes U+007F-U+009F), the quote
// and the backslash are escaped.
var asciiSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < 0x7f; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// escapableRune reports whether the protocol wants r sent as \uXXXX:
// characters browsers mangle or strip on some transports (the ranges of
// sockjs-node's "escapable" expression).
func escapableRune(r rune) bool {
	switch {
	case r < 0x7f:
		return r < 0x20
	case r <= 0x9f, r == 0xad:
		return true
	case r < 0x600:
		return false
	case r <= 0x604, r == 0x70f, r == 0x17b4, r == 0x17b5:
		return true
	case r < 0x200c:
		return false
	case r <= 0x200f, r >= 0x2028 && r <= 0x202f, r >= 0x2060 && r <= 0x206f:
		return true
	case r < 0xfeff:
		return false
	case r == 0xfeff, r >= 0xfff0 && r <= 0xffff:
		return true
	}
	return false
}

// appendQuoted appends s as a JSON string literal with SockJS escaping:
// everything encoding/json escapes plus the unicode ranges listed by the
// protocol. Lone UTF-16 surrogates carried in their 3-byte WTF-8 form (see
// decoder.str) come out as \udXXX, so a JavaScript string that holds one
// survives the round trip; any other invalid UTF-8 becomes \ufffd.
//
// A high surrogate right before a low one is no longer lone: in the
// client's UTF-16 string the two are one character, whatever the escaping
// (JSON has no way to send them apart). It is written as that character,
// so the frame says what the client will read and the decoder gives back
// the same string as for the character's own 4-byte UTF-8 form.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending verbatim output
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if asciiSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = appendUnicodeEscape(dst, rune(b))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			if sur, ok := wtf8Surrogate(s[i:]); ok {
				if lo, ok := wtf8Surrogate(s[i+3:]); ok && sur < 0xdc00 && lo >= 0xdc00 {
					dst = utf8.AppendRune(dst, utf16.DecodeRune(sur, lo))
					i += 6
				} else {
					dst = appendUnicodeEscape(dst, sur)
					i += 3
				}
			} else {
				dst = append(dst, `\ufffd`...)
				i++
			}
			start = i
			continue
		}
		if escapableRune(r) {
			dst = append(dst, s[start:i]...)
			dst = appendUnicodeEscape(dst, r)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendUnicodeEscape(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u',
		hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// wtf8Surrogate decodes a surrogate code point (U+D800-U+DFFF) encoded the
// way UTF-8 would encode it if it were allowed (ED A0..BF 80..BF).
func wtf8Surrogate(s string) (rune, bool) {
	if len(s) < 3 || s[0] != 0xed || s[1] < 0xa0 || s[1] > 0xbf || s[2] < 0x80 || s[2] > 0xbf {
		return 0, false
	}
	return 0xd000 | rune(s[1]&0x3f)<<6 | rune(s[2]&0x3f), true
}

// appendWTF8Surrogate appends the 3-byte form of a lone surrogate.
func appendWTF8Surrogate(dst []byte, r rune) []byte {
	return append(dst, 0xed, 0x80|byte(r>>6&0x3f), 0x80|byte(r&0x3f))
}

// appendJSString appends s as a JSON string fit to sit inside an HTML
// <script> element or a JSONP body: besides the JSON escapes, '<', '>' and
// '&' are written as \u escapes so a message can never close the script.
// s is a SockJS frame, which already has every control character escaped.
func appendJSString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b == '"' || b == '\\':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', b)
		case b < 0x20 || b == '<' || b == '>' || b == '&':
			dst = append(dst, s[start:i]...)
			dst = appendUnicodeEscape(dst, rune(b))
		default:
			continue
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
