// Opens one hub session per transport (sockjs-client), subscribes each to
// <channel>, prints "ready" once every subscribe is confirmed, then waits
// until each has <count> channel messages (or 60 s) and prints one JSON
// line: what every session received. The Go test publishes and judges.
//
//   NODE_PATH=<dir with sockjs-client> node hub.js <url> <transport,...> <channel> <count>
'use strict';
const SockJS = require('sockjs-client');

const [url, transports, channel, countArg] = process.argv.slice(2);
const count = parseInt(countArg, 10);
const deadline = setTimeout(() => finish(), 60000);
const sessions = [];

function finish() {
  clearTimeout(deadline);
  const out = sessions.map((s) => ({ transport: s.transport, received: s.received, closed: s.closed }));
  process.stdout.write(JSON.stringify({ sessions: out }) + '\n');
  sessions.forEach((s) => s.sock.close());
  process.exit(0);
}

function open(transport) {
  return new Promise((resolve, reject) => {
    const s = { transport, received: [], closed: null };
    s.sock = new SockJS(url, null, { transports: [transport], timeout: 10000 });
    s.sock.onopen = () => s.sock.send(JSON.stringify({ data_type: 'subscribe', id: 1, data: { channel } }));
    s.sock.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.data_type === 'subscribe' && m.id === 1) return resolve(s);
      if (m.channel === channel) s.received.push(m);
      else if (m.data_type === 'subscribe_error' || m.data_type === 'error') reject(new Error(e.data));
      if (sessions.length && sessions.every((x) => x.received.length >= count)) finish();
    };
    s.sock.onclose = (e) => {
      s.closed = { code: e.code, reason: e.reason };
      reject(new Error(`${transport} closed: ${e.code} ${e.reason}`));
    };
  });
}

Promise.all(transports.split(',').map(open))
  .then((all) => {
    sessions.push(...all);
    process.stdout.write('ready\n');
  })
  .catch((e) => {
    process.stdout.write(JSON.stringify({ error: String(e) }) + '\n');
    process.exit(1);
  });
