// Load for Shoal's chaos suite: real sockjs-client (1.6.1, installed under
// node/e2e/testdata/client) sessions against an echo endpoint, each sending
// numbered messages at a steady rate and checking every echo.
//
//   node driver.js <url> <transport,transport,...> <sessions> <interval-ms>
//
// Opens <sessions> sessions, spread round robin over the transports, prints
// {"ready":...} once all are open (or failed to), then sends one message per
// session every <interval-ms>. On the line "stop" on stdin it stops sending,
// waits up to 10 s for the echoes still on their way, closes every session
// and prints one JSON line: per transport, sessions opened/failed/closed
// (by the server or the network, with their codes), messages sent, received,
// lost (sent by a session that stayed open, never echoed), lost in closed
// sessions, duplicated and out of order.
'use strict';
const SockJS = require('sockjs-client');

const [url, transportsArg, sessionsArg, intervalArg] = process.argv.slice(2);
const transports = transportsArg.split(',');
const total = parseInt(sessionsArg, 10);
const interval = parseInt(intervalArg, 10);

const sessions = [];
let stopping = false;
const dupSamples = []; // the first duplicates seen: which message, when (ms since the epoch)

function newSession(n, transport) {
  const s = {
    n, transport, sock: null, opened: false, failed: null, closed: null,
    next: 0, echoed: new Map(), sentAt: new Map(), reordered: 0, last: -1,
  };
  return s;
}

function open(s) {
  return new Promise((resolve) => {
    const sock = new SockJS(url, null, { transports: [s.transport], timeout: 10000 });
    s.sock = sock;
    sock.onopen = () => { s.opened = true; resolve(); };
    sock.onmessage = (e) => {
      const m = /^(\d+):(\d+)$/.exec(e.data);
      if (!m || parseInt(m[1], 10) !== s.n) return;
      const seq = parseInt(m[2], 10);
      s.echoed.set(seq, (s.echoed.get(seq) || 0) + 1);
      if (s.echoed.get(seq) > 1 && dupSamples.length < 20) {
        dupSamples.push({ session: s.n, transport: s.transport, seq, at: Date.now(), sentAt: s.sentAt.get(seq) });
      }
      if (seq < s.last) s.reordered++;
      s.last = Math.max(s.last, seq);
    };
    sock.onclose = (e) => {
      if (!s.opened) {
        s.failed = `${e.code} ${e.reason}`;
        resolve();
        return;
      }
      if (!stopping) s.closed = { code: e.code, reason: e.reason, at: Date.now() };
    };
  });
}

function send(s) {
  if (stopping || !s.opened || s.closed) return;
  try {
    s.sock.send(`${s.n}:${s.next}`);
    s.sentAt.set(s.next, Date.now());
    s.next++;
  } catch (e) {
    // sockjs-client throws when the session is not open: it closed.
  }
}

async function main() {
  // Open in small batches, so the cluster is not hit by 120 handshakes at once.
  const opening = [];
  for (let i = 0; i < total; i++) {
    const s = newSession(i, transports[i % transports.length]);
    sessions.push(s);
    opening.push(open(s));
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 50));
  }
  await Promise.all(opening);
  const opened = sessions.filter((s) => s.opened).length;
  process.stdout.write(JSON.stringify({ ready: opened, of: total }) + '\n');

  // Each session sends on its own timer, phase-shifted, so sends spread evenly.
  const timers = sessions.map((s, i) => setTimeout(() => {
    send(s);
    s.timer = setInterval(() => send(s), interval);
  }, Math.floor((interval * i) / total)));

  await new Promise((resolve) => {
    let buf = '';
    process.stdin.on('data', (d) => {
      buf += d;
      if (buf.includes('stop')) resolve();
    });
    process.stdin.on('end', resolve);
  });
  stopping = true;
  timers.forEach(clearTimeout);
  sessions.forEach((s) => clearInterval(s.timer));

  // Echoes still on their way: wait for every open session's, up to 10 s.
  const pending = () => sessions.some((s) => s.opened && !s.closed && s.echoed.size < s.next);
  const start = Date.now();
  while (pending() && Date.now() - start < 10000) await new Promise((r) => setTimeout(r, 50));
  sessions.forEach((s) => { try { s.sock.close(); } catch (e) { /* closed already */ } });

  const report = {};
  for (const t of transports) {
    report[t] = {
      sessions: 0, opened: 0, failed_open: 0, closed: 0, close_codes: {},
      sent: 0, received: 0, lost: 0, lost_in_closed: 0, duplicated: 0, reordered: 0,
    };
  }
  for (const s of sessions) {
    const r = report[s.transport];
    r.sessions++;
    if (!s.opened) { r.failed_open++; r.close_codes[s.failed] = (r.close_codes[s.failed] || 0) + 1; continue; }
    r.opened++;
    r.sent += s.next;
    let missing = 0;
    for (let seq = 0; seq < s.next; seq++) {
      const c = s.echoed.get(seq) || 0;
      if (c === 0) missing++;
      if (c > 1) r.duplicated += c - 1;
      r.received += c;
    }
    r.reordered += s.reordered;
    if (s.closed) {
      r.closed++;
      const k = `${s.closed.code} ${s.closed.reason}`;
      r.close_codes[k] = (r.close_codes[k] || 0) + 1;
      r.lost_in_closed += missing;
    } else {
      r.lost += missing;
    }
  }
  process.stdout.write(JSON.stringify({ transports: report, duplicates: dupSamples }) + '\n');
  process.exit(0);
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e && e.stack || e) }) + '\n');
  process.exit(1);
});
