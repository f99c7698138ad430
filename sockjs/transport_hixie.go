package sockjs

import (
	"bufio"
	"crypto/md5"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// Hixie-76 (and its predecessor Hixie-75), the websocket drafts that the
// SockJS 0.3.3 protocol suite still checks, served on the hijacked
// connection as far as SockJS needs: text frames (0x00 <utf-8> 0xFF) and the closing handshake.

const hixieHandshakeTimeout = 10 * time.Second

// hixieKeyNumber computes the number a Sec-WebSocket-Key1/2 header stands
// for: its digits as a number divided by its count of spaces.
func hixieKeyNumber(key string) (uint32, bool) {
	var num uint64
	var spaces uint64
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c >= '0' && c <= '9':
			num = num*10 + uint64(c-'0')
			if num > 1<<40 {
				return 0, false
			}
		case c == ' ':
			spaces++
		}
	}
	if spaces == 0 || num%spaces != 0 || num/spaces > 0xffffffff {
		return 0, false
	}
	return uint32(num / spaces), true
}

func (e *Endpoint) serveHixie(w http.ResponseWriter, r *http.Request) {
	key1, key2 := r.Header.Get("Sec-WebSocket-Key1"), r.Header.Get("Sec-WebSocket-Key2")
	draft76 := key1 != "" || key2 != ""
	var n1, n2 uint32
	if draft76 {
		var ok1, ok2 bool
		n1, ok1 = hixieKeyNumber(key1)
		n2, ok2 = hixieKeyNumber(key2)
		if !ok1 || !ok2 {
			httpError(w, http.StatusBadRequest, "Invalid WebSocket key.")
			return
		}
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		httpError(w, http.StatusInternalServerError, "Cannot upgrade this connection.")
		return
	}
	conn.SetDeadline(time.Now().Add(hixieHandshakeTimeout))
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	location := scheme + "://" + r.Host + r.URL.RequestURI()
	origin := r.Header.Get("Origin")
	if origin == "" {
		origin = "null"
	}
	// Response headers go out before the key3 nonce is read: HAProxy
	// forwards the nonce only after it has seen them.
	if draft76 {
		brw.WriteString("HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n")
		brw.WriteString("Sec-WebSocket-Origin: " + origin + "\r\nSec-WebSocket-Location: " + location + "\r\n")
		if p := r.Header.Get("Sec-WebSocket-Protocol"); p != "" {
			brw.WriteString("Sec-WebSocket-Protocol: " + p + "\r\n")
		}
	} else {
		brw.WriteString("HTTP/1.1 101 Web Socket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n")
		brw.WriteString("WebSocket-Origin: " + origin + "\r\nWebSocket-Location: " + location + "\r\n")
	}
	brw.WriteString("\r\n")
	if brw.Flush() != nil {
		conn.Close()
		return
	}
	if draft76 {
		var challenge [16]byte
		binary.BigEndian.PutUint32(challenge[0:4], n1)
		binary.BigEndian.PutUint32(challenge[4:8], n2)
		if _, err := io.ReadFull(brw.Reader, challenge[8:]); err != nil {
			conn.Close()
			return
		}
		sum := md5.Sum(challenge[:])
		if _, err := conn.Write(sum[:]); err != nil {
			conn.Close()
			return
		}
	}
	conn.SetDeadline(time.Time{})
	e.runWebsocket(r, &hixieConn{conn: conn, br: brw.Reader, limit: e.settings.MaxMessageSize}, false)
}

// hixieConn frames messages the Hixie-75/76 way.
type hixieConn struct {
	conn    net.Conn
	br      *bufio.Reader
	limit   int64
	writeMu sync.Mutex // serializes writes and the close frame
	once    sync.Once
}

// A Hixie-76 connection's reader waits in its read (it is rare enough).
func (c *hixieConn) waitReadable(time.Duration) bool { return false }
func (c *hixieConn) socket() syscall.RawConn         { return nil }
func (c *hixieConn) finishClose()                    {}
func (c *hixieConn) messageBuffered() bool           { return false }

// A Hixie-76 message is a buffer of its own, let go by the GC.
func (c *hixieConn) releaseMessage([]byte) {}

func (c *hixieConn) readMessage() ([]byte, error) {
	for {
		typ, err := c.br.ReadByte()
		if err != nil {
			return nil, err
		}
		if typ&0x80 == 0 {
			// Sentinel-delimited frame; only type 0x00 carries text.
			msg, err := c.readUntilFF()
			if err != nil {
				return nil, err
			}
			if typ == 0x00 {
				if !utf8.Valid(msg) {
					return nil, errInvalidUTF8
				}
				return msg, nil
			}
			continue
		}
		// Length-prefixed frame: 0xFF 0x00 is the closing handshake,
		// anything else is skipped.
		var length int64
		for {
			b, err := c.br.ReadByte()
			if err != nil {
				return nil, err
			}
			length = length<<7 | int64(b&0x7f)
			if length > c.limit {
				return nil, errMessageTooBig
			}
			if b&0x80 == 0 {
				break
			}
		}
		if typ == 0xff && length == 0 {
			return nil, io.EOF
		}
		if _, err := c.br.Discard(int(length)); err != nil {
			return nil, err
		}
	}
}

func (c *hixieConn) readUntilFF() ([]byte, error) {
	var msg []byte
	for {
		chunk, err := c.br.ReadSlice(0xff)
		if int64(len(msg)+len(chunk)) > c.limit+1 {
			return nil, errMessageTooBig
		}
		if err == nil {
			return append(msg, chunk[:len(chunk)-1]...), nil
		}
		if err != bufio.ErrBufferFull {
			return nil, err
		}
		msg = append(msg, chunk...)
	}
}

// writeFrame sends the payload of wire in a Hixie frame.
func (c *hixieConn) writeFrame(wire []byte, d time.Duration) error {
	if wire == nil {
		return nil
	}
	return c.writeText(wsPayload(wire), d)
}

// tryWriteFrame takes nothing: Hixie-76 sockets are rare enough to go
// through their writer.
func (c *hixieConn) tryWriteFrame([]byte) (bool, bool, error) { return false, false, nil }

func (c *hixieConn) writeText(b []byte, d time.Duration) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(d))
	frame := make([]byte, 0, len(b)+2)
	frame = append(append(append(frame, 0x00), b...), 0xff)
	_, err := c.conn.Write(frame)
	return err
}

func (c *hixieConn) close(code int, reason string) {
	c.once.Do(func() {
		c.writeMu.Lock()
		c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		c.conn.Write([]byte{0xff, 0x00})
		c.writeMu.Unlock()
		c.conn.Close()
	})
}
