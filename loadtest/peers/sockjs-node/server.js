// sockjs-node 0.3.24 peer of the load test comparison: the /echo and
// /broadcast endpoints of the SockJS test server, nothing else.
'use strict';

const http = require('http');
const sockjs = require('sockjs');

const listen = process.argv[2] || '127.0.0.1:8082';
const sep = listen.lastIndexOf(':');
const host = listen.slice(0, sep);
const port = Number(listen.slice(sep + 1));

const quiet = { log: function () {} };

const echo = sockjs.createServer(quiet);
echo.on('connection', function (conn) {
  conn.on('data', function (msg) {
    conn.write(msg);
  });
});

const open = new Set();
const broadcast = sockjs.createServer(quiet);
broadcast.on('connection', function (conn) {
  open.add(conn);
  conn.on('data', function (msg) {
    for (const c of open) {
      c.write(msg);
    }
  });
  conn.on('close', function () {
    open.delete(conn);
  });
});

const server = http.createServer();
echo.installHandlers(server, { prefix: '/echo' });
broadcast.installHandlers(server, { prefix: '/broadcast' });
server.listen(port, host, function () {
  console.log('sockjs-node 0.3.24 peer listening on ' + listen);
});
