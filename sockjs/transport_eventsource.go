package sockjs

import "net/http"

// eventsource (GET <session>/eventsource): Server-Sent Events, one frame
// per event.

// appendEventSourceFrame wraps a frame as "data: <frame>\r\n\r\n". The
// client passes the data through decodeURI, so '%' is escaped, as are the
// bytes that would end the event (a JSON-encoded frame has none of those).
func appendEventSourceFrame(dst, frame []byte) []byte {
	dst = append(dst, "data: "...)
	for _, b := range frame {
		switch b {
		case '%':
			dst = append(dst, "%25"...)
		case '\r':
			dst = append(dst, "%0D"...)
		case '\n':
			dst = append(dst, "%0A"...)
		case 0:
			dst = append(dst, "%00"...)
		default:
			dst = append(dst, b)
		}
	}
	return append(dst, "\r\n\r\n"...)
}

func (e *Endpoint) serveEventSource(w http.ResponseWriter, r *http.Request, sid string) {
	h := w.Header()
	e.jsessionid(w, r)
	cors(h, r)
	noCache(h)
	h.Set("Content-Type", "text/event-stream")
	hr := e.newHTTPSink(w, false, appendEventSourceFrame)
	// Opera needs one more new line first.
	hr.prelude = []byte("\r\n")
	e.receive(r, sid, TransportEventSource, hr)
}
