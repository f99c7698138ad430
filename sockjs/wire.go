package sockjs

import "encoding/binary"

// The wire between nodes: every message one node sends another over the
// bus, and every channel log entry it leaves in the store, is encoded and
// decoded here, with one reader (wireReader) for the length-prefixed
// fields. Decoders never trust their input: a peer of another version, or
// a corrupted store value, yields ok == false, never a panic.
//
// A message addressed to a node (bus.SendNode) is an envelope: one kind
// byte, then its payload.
//
//	wake      'w' key                           wake the receivers of key
//	frames    'f' str(key) str(msg)...          messages for the websocket of key
//	hand-off  'h' str(key) str(token) uv(batch) str(msg)...   messages handed to the poll holding lease token (store.HandOffCommitter)
//	channels  'c' op str(key) str(channel) uv(cursor)   a subscription note
//	ask       'q' str(node) str(key) uv(id)     does the receiver of key still live here? answer node
//	answer    'a' uv(id) state                   the answer to ask id: 0 gone, 1 serving, 2 finishing (holderState)
//
// A message on a channel (bus.Publish) is uv(offset) then a log entry; a
// log entry (what store.Channels keeps) is str(except) then the message,
// except being the store key of a session that does not get it.
//
// uv(x) is x as a uvarint; str(s) is uv(len(s)) then s.
const (
	envelopeWake     = 'w'
	envelopeFrames   = 'f'
	envelopeHandOff  = 'h'
	envelopeChannels = 'c'
	envelopeAsk      = 'q'
	envelopeAnswer   = 'a'
)

// Operations of a subscription note.
const (
	noteSubscribe   = 's'
	noteUnsubscribe = 'u'
)

// wireReader reads the fields of one message in order. The first field
// that does not fit sets failed; every later read returns a zero value, so
// a decoder checks once, at the end.
type wireReader struct {
	b      string
	failed bool
}

// uvarint reads uv(x).
func (r *wireReader) uvarint() uint64 {
	var x uint64
	for i := 0; i < len(r.b) && i < binary.MaxVarintLen64; i++ {
		c := r.b[i]
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break // overflows 64 bits
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			r.b = r.b[i+1:]
			return x
		}
	}
	r.fail()
	return 0
}

// str reads str(s).
func (r *wireReader) str() string {
	l := r.uvarint()
	if r.failed || l > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := r.b[:l]
	r.b = r.b[l:]
	return s
}

// byte reads one byte.
func (r *wireReader) byte() byte {
	if r.failed || len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// rest returns what is left.
func (r *wireReader) rest() string {
	s := r.b
	r.b = ""
	return s
}

func (r *wireReader) fail() { r.failed, r.b = true, "" }

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendWakeEnvelope(dst []byte, key string) []byte {
	return append(append(dst, envelopeWake), key...)
}

func appendFramesEnvelope(dst []byte, key string, msgs []string) []byte {
	return appendStrs(appendStr(append(dst, envelopeFrames), key), msgs)
}

func appendStrs(dst []byte, msgs []string) []byte {
	for _, m := range msgs {
		dst = appendStr(dst, m)
	}
	return dst
}

// decodeFramesEnvelope reads a frames envelope without its kind byte.
func decodeFramesEnvelope(b []byte) (key string, msgs []string, ok bool) {
	r := wireReader{b: string(b)}
	key = r.str()
	msgs = r.strs()
	if r.failed || len(msgs) == 0 {
		return "", nil, false
	}
	return key, msgs, true
}

// strs reads str(s)... to the end: at least one.
func (r *wireReader) strs() (msgs []string) {
	for !r.failed && len(r.b) > 0 {
		msgs = append(msgs, r.str())
	}
	return msgs
}

func appendHandOffEnvelope(dst []byte, key, token string, batch uint64, msgs []string) []byte {
	dst = appendStr(append(dst, envelopeHandOff), key)
	dst = binary.AppendUvarint(appendStr(dst, token), batch)
	return appendStrs(dst, msgs)
}

// decodeHandOffEnvelope reads a hand-off envelope without its kind byte.
func decodeHandOffEnvelope(b []byte) (key, token string, batch uint64, msgs []string, ok bool) {
	r := wireReader{b: string(b)}
	key = r.str()
	token = r.str()
	batch = r.uvarint()
	msgs = r.strs()
	if r.failed || len(msgs) == 0 || batch == 0 {
		return "", "", 0, nil, false
	}
	return key, token, batch, msgs, true
}

func encodeNote(op byte, key, channel string, cursor uint64) []byte {
	b := make([]byte, 0, 2+3*binary.MaxVarintLen64+len(key)+len(channel))
	b = append(b, envelopeChannels, op)
	b = appendStr(b, key)
	b = appendStr(b, channel)
	return binary.AppendUvarint(b, cursor)
}

// decodeNote reads a note without its envelope byte.
func decodeNote(b []byte) (op byte, key, channel string, cursor uint64, ok bool) {
	r := wireReader{b: string(b)}
	op = r.byte()
	key = r.str()
	channel = r.str()
	cursor = r.uvarint()
	if r.failed || (op != noteSubscribe && op != noteUnsubscribe) {
		return 0, "", "", 0, false
	}
	return op, key, channel, cursor, true
}

func encodeEntry(except, msg string) string {
	b := make([]byte, 0, binary.MaxVarintLen64+len(except)+len(msg))
	b = appendStr(b, except)
	b = append(b, msg...)
	return string(b)
}

func decodeEntry(entry string) (except, msg string, ok bool) {
	r := wireReader{b: entry}
	except = r.str()
	msg = r.rest()
	return except, msg, !r.failed
}

func encodeBusEntry(off uint64, entry string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(entry))
	b = binary.AppendUvarint(b, off)
	return append(b, entry...)
}

func decodeBusEntry(b []byte) (off uint64, entry string, ok bool) {
	r := wireReader{b: string(b)}
	off = r.uvarint()
	entry = r.rest()
	return off, entry, !r.failed
}

func appendAskEnvelope(dst []byte, node, key string, id uint64) []byte {
	dst = appendStr(append(dst, envelopeAsk), node)
	dst = appendStr(dst, key)
	return binary.AppendUvarint(dst, id)
}

// decodeAsk reads an ask without its kind byte.
func decodeAsk(b []byte) (node, key string, id uint64, ok bool) {
	r := wireReader{b: string(b)}
	node = r.str()
	key = r.str()
	id = r.uvarint()
	return node, key, id, !r.failed
}

func appendAnswerEnvelope(dst []byte, id uint64, st holderState) []byte {
	return append(binary.AppendUvarint(append(dst, envelopeAnswer), id), byte(st))
}

// decodeAnswer reads an answer without its kind byte. (A node older than
// holderFinishing drops an answer of 2 as malformed: to it, silence.)
func decodeAnswer(b []byte) (id uint64, st holderState, ok bool) {
	r := wireReader{b: string(b)}
	id = r.uvarint()
	c := holderState(r.byte())
	return id, c, !r.failed && c <= holderFinishing
}
