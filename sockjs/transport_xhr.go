package sockjs

import (
	"bytes"
	"net/http"
)

// xhr-polling (POST <session>/xhr), xhr_send (POST <session>/xhr_send) and
// xhr-streaming (POST <session>/xhr_streaming): frames end with "\n".

func appendXHRFrame(dst, frame []byte) []byte {
	return append(append(dst, frame...), '\n')
}

// xhrStreamingPrelude is 2 KiB of 'h': Internet Explorer shows nothing of
// an XHR stream before that much arrived.
var xhrStreamingPrelude = append(bytes.Repeat([]byte{'h'}, 2048), '\n')

// xhrHeaders answers a CORS preflight (OPTIONS) and returns false, or sets
// the headers of every xhr answer and returns true.
func (e *Endpoint) xhrHeaders(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodOptions {
		e.serveOptions(w, r, "OPTIONS, POST")
		return false
	}
	h := w.Header()
	e.jsessionid(w, r)
	cors(h, r)
	noCache(h)
	return true
}

func (e *Endpoint) serveXHRPolling(w http.ResponseWriter, r *http.Request, sid string) {
	if !e.xhrHeaders(w, r) {
		return
	}
	w.Header()["Content-Type"] = contentTypeJSHeader
	e.receive(r, sid, TransportXHR, e.newHTTPSink(w, true, appendXHRFrame))
}

func (e *Endpoint) serveXHRStreaming(w http.ResponseWriter, r *http.Request, sid string) {
	if !e.xhrHeaders(w, r) {
		return
	}
	w.Header()["Content-Type"] = contentTypeJSHeader
	hr := e.newHTTPSink(w, false, appendXHRFrame)
	hr.prelude = xhrStreamingPrelude
	e.receive(r, sid, TransportXHRStreaming, hr)
}

func (e *Endpoint) serveXHRSend(w http.ResponseWriter, r *http.Request, sid string) {
	if !e.xhrHeaders(w, r) {
		return
	}
	var body sendBody
	defer body.release()
	if !e.readBody(w, r, sid, &body) {
		return
	}
	if !e.deliver(w, r, sid, body.data, decodeMessages) {
		return
	}
	// Firefox takes a 204 without a content type for XML and complains.
	w.Header()["Content-Type"] = contentTypePlainHeader
	w.WriteHeader(http.StatusNoContent)
}
