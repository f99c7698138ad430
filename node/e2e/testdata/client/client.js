// Drives the real sockjs-client (1.6.1) in Node.js for Shoal's end-to-end
// tests. Prints one JSON line with what happened; the Go test judges it.
//
//   node client.js echo <url> <transport> <count>
//     one session sends <count> numbered messages and waits for each echo.
//   node client.js broadcast <url> <transport,transport,...> <count>
//     one session per transport; each sends <count> numbered messages to a
//     broadcast endpoint; prints what every session received.
'use strict';
const SockJS = require('sockjs-client');

const [mode, url, transports, countArg] = process.argv.slice(2);
const count = parseInt(countArg || '10', 10);
const deadline = setTimeout(() => finish({ error: 'timeout' }), 30000);

function finish(result) {
  clearTimeout(deadline);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(result.error ? 1 : 0);
}

function open(transport) {
  return new Promise((resolve, reject) => {
    const sock = new SockJS(url, null, { transports: [transport], timeout: 10000 });
    const received = [];
    sock.onmessage = (e) => received.push(e.data);
    sock.onopen = () => resolve({ sock, received, transport: sock.transport });
    sock.onclose = (e) => reject(new Error(`closed before open: ${e.code} ${e.reason}`));
  });
}

function waitFor(cond, ms) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() - start > ms) return reject(new Error('condition not met in time'));
      setTimeout(tick, 20);
    };
    tick();
  });
}

async function echo() {
  const c = await open(transports);
  for (let i = 0; i < count; i++) {
    c.sock.send(`msg-${i}`);
    await waitFor(() => c.received.length > i, 10000);
  }
  c.sock.close();
  finish({ transport: c.transport, received: c.received });
}

async function broadcast() {
  const clients = [];
  for (const t of transports.split(',')) clients.push(await open(t));
  // Let every session register before anyone speaks.
  await new Promise((r) => setTimeout(r, 300));
  clients.forEach((c, n) => {
    for (let i = 0; i < count; i++) c.sock.send(`${n}:${i}`);
  });
  const total = clients.length * count;
  try {
    await waitFor(() => clients.every((c) => c.received.length >= total), 20000);
  } catch (e) {
    // Report what arrived; the Go test says what is missing.
  }
  await new Promise((r) => setTimeout(r, 300));
  clients.forEach((c) => c.sock.close());
  finish({ sessions: clients.map((c) => ({ transport: c.transport, received: c.received })) });
}

(mode === 'broadcast' ? broadcast() : echo()).catch((e) => finish({ error: String(e) }));
