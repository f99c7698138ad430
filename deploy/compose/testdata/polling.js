// Keeps <sessions> sockjs-client sessions of one transport busy against an
// echo endpoint until stdin closes: each sends a numbered message, waits for
// its echo, sends the next. Prints "ready" once every session is open, then,
// when stdin closes, one JSON line: per session what was sent, what came
// back and whether (and how) it closed. The Go test judges it.
//
//   NODE_PATH=<dir with sockjs-client> node polling.js <url> <transport> <sessions>
'use strict';
const SockJS = require('sockjs-client');

const [url, transport, sessionsArg] = process.argv.slice(2);
const sessions = parseInt(sessionsArg || '10', 10);
const all = [];

function start(n) {
  return new Promise((resolve, reject) => {
    const s = { n, sent: 0, received: [], closed: null, transport: '' };
    const sock = new SockJS(url, null, { transports: [transport], timeout: 10000 });
    const next = () => {
      if (s.closed || s.stopping) return;
      sock.send(`${n}:${s.sent}`);
      s.sent++;
    };
    sock.onopen = () => {
      s.transport = sock.transport;
      all.push(s);
      resolve();
      next();
    };
    sock.onmessage = (e) => {
      s.received.push(e.data);
      setTimeout(next, 100);
    };
    sock.onclose = (e) => {
      s.closed = { code: e.code, reason: e.reason, at: Date.now() };
      reject(new Error(`session ${n} closed before open: ${e.code} ${e.reason}`));
    };
    s.sock = sock;
  });
}

async function main() {
  const opened = [];
  for (let n = 0; n < sessions; n++) opened.push(start(n));
  await Promise.all(opened);
  process.stdout.write('ready\n');
  process.stdin.resume();
  process.stdin.on('end', async () => {
    all.forEach((s) => (s.stopping = true));
    // The last echo in flight may still come back.
    const until = Date.now() + 5000;
    while (Date.now() < until && all.some((s) => !s.closed && s.received.length < s.sent)) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const out = all.map((s) => ({ n: s.n, transport: s.transport, sent: s.sent, received: s.received, closed: s.closed }));
    all.forEach((s) => s.sock.close());
    process.stdout.write(JSON.stringify({ sessions: out }) + '\n');
    process.exit(0);
  });
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e) }) + '\n');
  process.exit(1);
});
