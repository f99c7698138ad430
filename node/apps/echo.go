package apps

import (
	"html/template"
	"net/http"

	"github.com/shoal-rt/shoal/sockjs"
)

// mountEcho serves /echo (unless the conformance app already does) and a
// demo page at / that talks to it.
func mountEcho(node *sockjs.Node, mux *http.ServeMux, opts Options) error {
	if node.Endpoint("/echo") == nil {
		if _, err := node.NewEndpoint(echoHandler, sockjs.Settings{Prefix: "/echo", SockJSURL: opts.SockJSURL}); err != nil {
			return err
		}
	}
	url := opts.SockJSURL
	if url == "" {
		url = sockjs.DefaultSockJSURL
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		demoPage.Execute(w, url)
	})
	return nil
}

var demoPage = template.Must(template.New("demo").Parse(`<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>Shoal echo</title>
  <script src="{{.}}"></script>
  <style>body{font-family:sans-serif;max-width:40em;margin:2em auto}#log{border:1px solid #ccc;height:20em;overflow:auto;padding:.5em}</style>
</head>
<body>
  <h1>Shoal echo</h1>
  <form id="f"><input id="msg" autocomplete="off" placeholder="say something"> <button>Send</button></form>
  <p>Transport: <span id="transport">connecting…</span></p>
  <div id="log"></div>
  <script>
    var log = function(t) {
      var p = document.createElement('div');
      p.textContent = t;
      var l = document.getElementById('log');
      l.appendChild(p);
      l.scrollTop = l.scrollHeight;
    };
    var sock = new SockJS('/echo');
    sock.onopen = function() {
      document.getElementById('transport').textContent = sock.transport;
      log('[open]');
    };
    sock.onmessage = function(e) { log('< ' + e.data); };
    sock.onclose = function(e) { log('[close] ' + e.code + ' ' + e.reason); };
    document.getElementById('f').onsubmit = function(ev) {
      ev.preventDefault();
      var m = document.getElementById('msg');
      log('> ' + m.value);
      sock.send(m.value);
      m.value = '';
    };
  </script>
</body>
</html>
`))
