package sockjs

import "strconv"

// SockJS frames as the client reads them. Transports wrap a frame in their
// own envelope (a newline for xhr, "data: " for eventsource, a script call
// for htmlfile and jsonp).
const (
	openFrame      = "o"
	heartbeatFrame = "h"
)

// appendMessageFrame appends an 'a' frame holding msgs: a["m1","m2"].
func appendMessageFrame(dst []byte, msgs []string) []byte {
	dst = append(dst, 'a', '[')
	for i, m := range msgs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendQuoted(dst, m)
	}
	return append(dst, ']')
}

// appendCloseFrame appends a 'c' frame: c[3000,"Go away!"].
func appendCloseFrame(dst []byte, code int, reason string) []byte {
	dst = append(dst, 'c', '[')
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ',')
	dst = appendQuoted(dst, reason)
	return append(dst, ']')
}

// closeFrame returns the 'c' frame for code and reason.
func closeFrame(code int, reason string) []byte {
	return appendCloseFrame(make([]byte, 0, len(reason)+16), code, reason)
}
