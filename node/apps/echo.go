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
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		demoPage.Execute(w, url)
	})
	return nil
}

// demoPage says what went wrong instead of waiting forever: a
// sockjs-client that did not load (no internet and no local copy), a
// server that cannot be reached, a connection that closed. Send never
// reloads the page and keeps the text when there is no connection.
var demoPage = template.Must(template.New("demo").Parse(`<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>Shoal echo</title>
  <style>
    body{font-family:sans-serif;max-width:40em;margin:2em auto}
    #log{border:1px solid #ccc;height:20em;overflow:auto;padding:.5em}
    #error{display:none;background:#fdecea;border:1px solid #e0a9a4;color:#8a1c13;padding:.6em;margin:.5em 0}
    #error.shown{display:block}
  </style>
</head>
<body>
  <h1>Shoal echo</h1>
  <div id="error" role="alert"></div>
  <form id="f"><input id="msg" autocomplete="off" placeholder="say something"> <button>Send</button></form>
  <p>Status: <span id="status">loading sockjs-client…</span> <button id="reconnect" hidden>Reconnect</button></p>
  <div id="log"></div>
  <script>
    var sockjsURL = {{.}};
    var sock = null;
    function $(id) { return document.getElementById(id); }
    function log(t) {
      var p = document.createElement('div');
      p.textContent = t;
      $('log').appendChild(p);
      $('log').scrollTop = $('log').scrollHeight;
    }
    function status(t) { $('status').textContent = t; }
    function showError(t) { $('error').textContent = t; $('error').className = 'shown'; }
    function clearError() { $('error').textContent = ''; $('error').className = ''; }
    // Bound first, so Send never submits the form (and reloads the page),
    // whatever fails below.
    $('f').addEventListener('submit', function(ev) {
      ev.preventDefault();
      var m = $('msg');
      if (!sock || sock.readyState !== 1) {
        // Keep the error that says why, if one is shown.
        if (!$('error').textContent) showError('Not connected: the message was not sent.');
        return;
      }
      log('> ' + m.value);
      sock.send(m.value);
      m.value = '';
    });
    $('reconnect').addEventListener('click', function() { connect(); });
    function connect() {
      clearError();
      $('reconnect').hidden = true;
      status('connecting…');
      var opened = false;
      var slow = setTimeout(function() {
        if (!opened) status('connecting… (no answer from the server yet)');
      }, 5000);
      sock = new SockJS('/echo');
      sock.onopen = function() {
        opened = true;
        clearTimeout(slow);
        status('connected over ' + sock.transport);
        log('[open]');
      };
      sock.onmessage = function(e) { log('< ' + e.data); };
      sock.onclose = function(e) {
        clearTimeout(slow);
        $('reconnect').hidden = false;
        if (!opened) {
          status('not connected');
          showError('Cannot reach the server (' + e.code + ' ' + e.reason + ').');
        } else {
          status('disconnected');
          log('[close] ' + e.code + ' ' + e.reason);
        }
      };
    }
    window.addEventListener('load', function() {
      if (typeof SockJS === 'undefined') {
        status('not connected');
        showError('Could not load sockjs-client from ' + sockjsURL +
          '. Without internet access, install it next to the node (npm install sockjs-client) or pass --sockjs-client.');
        return;
      }
      connect();
    });
  </script>
  <script src="{{.}}"></script>
</body>
</html>
`))
