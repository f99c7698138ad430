package sockjs

import "net/http"

// jsonp-polling (GET <session>/jsonp?c=callback) and jsonp_send (POST
// <session>/jsonp_send, form-encoded d=<payload> or the payload itself).

// jsonpWrapper writes /**/callback("frame");. The leading comment keeps a
// callback name from forming the start of a Flash file (CVE-2014-4671).
func jsonpWrapper(callback string) func(dst, frame []byte) []byte {
	return func(dst, frame []byte) []byte {
		dst = append(dst, "/**/"...)
		dst = append(dst, callback...)
		dst = append(dst, '(')
		dst = appendJSString(dst, string(frame))
		return append(dst, ");\r\n"...)
	}
}

func (e *Endpoint) serveJSONP(w http.ResponseWriter, r *http.Request, sid string) {
	callback, ok := e.callbackHeaders(w, r, contentTypeJS)
	if !ok {
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	e.receive(r, sid, TransportJSONP, e.newHTTPSink(w, true, jsonpWrapper(callback)))
}

func (e *Endpoint) serveJSONPSend(w http.ResponseWriter, r *http.Request, sid string) {
	h := w.Header()
	e.jsessionid(w, r)
	noCache(h)
	var body sendBody
	defer body.release()
	if !e.readBody(w, r, sid, &body) {
		return
	}
	decode := func(body []byte) ([]string, error) { return decodeFormOrJSON(r, body) }
	if !e.deliver(w, r, sid, body.data, decode) {
		return
	}
	// "ok" rather than 204: Konqueror mishandles empty answers here.
	h.Set("Content-Type", contentTypePlain)
	w.Write([]byte("ok"))
}
