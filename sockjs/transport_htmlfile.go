package sockjs

import (
	"net/http"
	"strings"
)

// htmlfile (GET <session>/htmlfile?c=callback): a never-ending HTML page
// for Internet Explorer's "htmlfile" ActiveX trick; each frame is a script
// calling p() with the frame as a string.

const htmlfileHead = `<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{{callback}};
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>
`

// htmlfilePrelude fills the page head for callback up to 1 KiB: Safari
// renders nothing of a page before that.
func htmlfilePrelude(callback string) []byte {
	head := strings.Replace(htmlfileHead, "{{callback}}", callback, 1)
	b := make([]byte, 0, 1100)
	b = append(b, head...)
	for len(b) < 1024 {
		b = append(b, ' ')
	}
	return append(b, "\r\n\r\n"...)
}

func appendHTMLFileFrame(dst, frame []byte) []byte {
	dst = append(dst, "<script>\np("...)
	dst = appendJSString(dst, string(frame))
	return append(dst, ");\n</script>\r\n"...)
}

func (e *Endpoint) serveHTMLFile(w http.ResponseWriter, r *http.Request, sid string) {
	callback, ok := e.callbackHeaders(w, r, contentTypeHTML)
	if !ok {
		return
	}
	hr := e.newHTTPSink(w, false, appendHTMLFileFrame)
	hr.prelude = htmlfilePrelude(callback)
	e.receive(r, sid, TransportHTMLFile, hr)
}
