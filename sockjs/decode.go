package sockjs

import (
	"unicode/utf16"
	"unicode/utf8"
)

// Errors of incoming message bodies; their texts are what the protocol
// answers on xhr_send and jsonp_send.
var (
	errPayloadExpected error = bodyError("Payload expected.")
	errBrokenJSON      error = bodyError("Broken JSON encoding.")
)

// bodyError is a rejected incoming body; its text goes to the client as is.
type bodyError string

func (e bodyError) Error() string { return string(e) }

// maxJSONDepth bounds nesting in incoming non-string values.
const maxJSONDepth = 64

// decodeMessages parses an incoming body that must be a JSON array (the
// xhr_send and jsonp_send bodies): each element is one message. Strings are
// unescaped; other values are passed on as their JSON text. An empty or
// non-array body is errPayloadExpected, malformed JSON errBrokenJSON.
func decodeMessages(body []byte) ([]string, error) {
	d := decoder{buf: body}
	d.skipSpace()
	if d.pos == len(d.buf) {
		return nil, errPayloadExpected
	}
	if d.buf[d.pos] != '[' {
		// Valid JSON that is not an array is "no payload", as in sockjs-node.
		if _, err := d.value(0); err != nil {
			return nil, err
		}
		if d.skipSpace(); d.pos != len(d.buf) {
			return nil, errBrokenJSON
		}
		return nil, errPayloadExpected
	}
	msgs, err := d.array(nil)
	if err != nil {
		return nil, err
	}
	if d.skipSpace(); d.pos != len(d.buf) {
		return nil, errBrokenJSON
	}
	return msgs, nil
}

// decodeWebsocketMessages parses one frame received on a SockJS websocket:
// an array of messages, or a single JSON value. An empty frame carries
// nothing. The messages go into into's array when it has room (the
// reader's, reused from one frame to the next).
func decodeWebsocketMessages(frame []byte, into []string) ([]string, error) {
	d := decoder{buf: frame}
	if d.skipSpace(); d.pos == len(d.buf) {
		return nil, nil
	}
	var msgs []string
	var err error
	if d.buf[d.pos] == '[' {
		msgs, err = d.array(into)
	} else {
		var m string
		m, err = d.value(0)
		msgs = append(into[:0], m)
	}
	if err != nil {
		return nil, err
	}
	if d.skipSpace(); d.pos != len(d.buf) {
		return nil, errBrokenJSON
	}
	return msgs, nil
}

type decoder struct {
	buf []byte
	pos int
	tmp []byte // scratch for unescaping strings
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.buf) {
		switch d.buf[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// array parses '[' value, ... ']' at pos.
func (d *decoder) array(into []string) ([]string, error) {
	d.pos++ // '['
	msgs := into[:0]
	d.skipSpace()
	if d.pos < len(d.buf) && d.buf[d.pos] == ']' {
		d.pos++
		return msgs, nil
	}
	for {
		d.skipSpace()
		m, err := d.value(0)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
		d.skipSpace()
		if d.pos >= len(d.buf) {
			return nil, errBrokenJSON
		}
		switch d.buf[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return msgs, nil
		default:
			return nil, errBrokenJSON
		}
	}
}

// value parses one JSON value at pos. A string comes back unescaped; any
// other value as its (validated) JSON text.
func (d *decoder) value(depth int) (string, error) {
	if d.pos >= len(d.buf) {
		return "", errBrokenJSON
	}
	if d.buf[d.pos] == '"' {
		return d.str()
	}
	start := d.pos
	if err := d.skipValue(depth); err != nil {
		return "", err
	}
	return string(d.buf[start:d.pos]), nil
}

// str parses a JSON string at pos. Escaped lone surrogates, which JSON
// allows and JavaScript strings may hold, are kept in their WTF-8 form;
// raw invalid UTF-8 becomes U+FFFD.
func (d *decoder) str() (string, error) {
	d.pos++ // opening quote
	start := d.pos
	// Fast path: no escapes, valid UTF-8.
	for d.pos < len(d.buf) {
		c := d.buf[d.pos]
		if c == '"' {
			s := d.buf[start:d.pos]
			d.pos++
			if utf8.Valid(s) {
				return string(s), nil
			}
			d.pos = start
			break
		}
		if c == '\\' || c < 0x20 {
			break
		}
		d.pos++
	}
	if !utf8.Valid(d.buf[start:d.pos]) {
		d.pos = start // the slow path replaces invalid bytes
	}
	out := append(d.tmp[:0], d.buf[start:d.pos]...)
	for d.pos < len(d.buf) {
		c := d.buf[d.pos]
		switch {
		case c == '"':
			d.pos++
			d.tmp = out
			return string(out), nil
		case c < 0x20:
			return "", errBrokenJSON
		case c == '\\':
			if d.pos+1 >= len(d.buf) {
				return "", errBrokenJSON
			}
			e := d.buf[d.pos+1]
			d.pos += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", errBrokenJSON
				}
				out = d.appendEscapedRune(out, r)
			default:
				return "", errBrokenJSON
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			d.pos++
		default:
			r, size := utf8.DecodeRune(d.buf[d.pos:])
			if r == utf8.RuneError && size == 1 {
				out = append(out, "\uFFFD"...)
			} else {
				out = append(out, d.buf[d.pos:d.pos+size]...)
			}
			d.pos += size
		}
	}
	return "", errBrokenJSON
}

// appendEscapedRune appends the rune of a \u escape, joining a high
// surrogate with a following \u low surrogate.
func (d *decoder) appendEscapedRune(out []byte, r rune) []byte {
	if !utf16.IsSurrogate(r) {
		return utf8.AppendRune(out, r)
	}
	if r < 0xdc00 && d.pos+6 <= len(d.buf) && d.buf[d.pos] == '\\' && d.buf[d.pos+1] == 'u' {
		save := d.pos
		d.pos += 2
		if lo, ok := d.hex4(); ok && lo >= 0xdc00 && lo <= 0xdfff {
			return utf8.AppendRune(out, utf16.DecodeRune(r, lo))
		}
		d.pos = save
	}
	return appendWTF8Surrogate(out, r)
}

func (d *decoder) hex4() (rune, bool) {
	if d.pos+4 > len(d.buf) {
		return 0, false
	}
	var r rune
	for _, c := range d.buf[d.pos : d.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	d.pos += 4
	return r, true
}

// skipValue validates and skips one JSON value at pos.
func (d *decoder) skipValue(depth int) error {
	if depth > maxJSONDepth || d.pos >= len(d.buf) {
		return errBrokenJSON
	}
	switch c := d.buf[d.pos]; {
	case c == '"':
		_, err := d.str()
		return err
	case c == '[' || c == '{':
		closer := byte(']')
		if c == '{' {
			closer = '}'
		}
		d.pos++
		d.skipSpace()
		if d.pos < len(d.buf) && d.buf[d.pos] == closer {
			d.pos++
			return nil
		}
		for {
			d.skipSpace()
			if closer == '}' {
				if d.pos >= len(d.buf) || d.buf[d.pos] != '"' {
					return errBrokenJSON
				}
				if _, err := d.str(); err != nil {
					return err
				}
				d.skipSpace()
				if d.pos >= len(d.buf) || d.buf[d.pos] != ':' {
					return errBrokenJSON
				}
				d.pos++
				d.skipSpace()
			}
			if err := d.skipValue(depth + 1); err != nil {
				return err
			}
			d.skipSpace()
			if d.pos >= len(d.buf) {
				return errBrokenJSON
			}
			switch d.buf[d.pos] {
			case ',':
				d.pos++
			case closer:
				d.pos++
				return nil
			default:
				return errBrokenJSON
			}
		}
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return errBrokenJSON
}

func (d *decoder) literal(lit string) error {
	if len(d.buf)-d.pos < len(lit) || string(d.buf[d.pos:d.pos+len(lit)]) != lit {
		return errBrokenJSON
	}
	d.pos += len(lit)
	return nil
}

// number skips a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() error {
	if d.buf[d.pos] == '-' {
		d.pos++
	}
	if d.pos >= len(d.buf) {
		return errBrokenJSON
	}
	if d.buf[d.pos] == '0' {
		d.pos++
	} else if !d.digits() {
		return errBrokenJSON
	}
	if d.pos < len(d.buf) && d.buf[d.pos] == '.' {
		d.pos++
		if !d.digits() {
			return errBrokenJSON
		}
	}
	if d.pos < len(d.buf) && (d.buf[d.pos] == 'e' || d.buf[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.buf) && (d.buf[d.pos] == '+' || d.buf[d.pos] == '-') {
			d.pos++
		}
		if !d.digits() {
			return errBrokenJSON
		}
	}
	return nil
}

func (d *decoder) digits() bool {
	start := d.pos
	for d.pos < len(d.buf) && d.buf[d.pos] >= '0' && d.buf[d.pos] <= '9' {
		d.pos++
	}
	return d.pos > start
}
