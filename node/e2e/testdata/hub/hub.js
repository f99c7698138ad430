// Runs the hub scenarios (scenarios.js) in Node.js with the real
// sockjs-client from npm (testdata/client/node_modules) and the
// hub-client.js the node serves. Prints one JSON line; node/e2e/hub_test.go
// judges it. With cfg.backend it runs backendRooms instead: a {"ready":true}
// line first, then the result (node/e2e/hub_backend_test.go).
//
//   node hub.js '<json config>'   (see scenarios.js for the config)
'use strict';
const path = require('path');
const SockJS = require(path.join(__dirname, '..', 'client', 'node_modules', 'sockjs-client'));
const scenarios = require('./scenarios.js');

const cfg = JSON.parse(process.argv[2]);
const deadline = setTimeout(() => finish({ error: 'driver timeout' }), cfg.timeoutMs || 120000);

function finish(result) {
  clearTimeout(deadline);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

async function main() {
  // The helper exactly as browsers get it from the node.
  const resp = await fetch(cfg.base + '/hub-client.js');
  if (!resp.ok) throw new Error('GET /hub-client.js: ' + resp.status);
  const src = await resp.text();
  const mod = { exports: {} };
  new Function('module', 'exports', src)(mod, mod.exports);
  if (cfg.backend) {
    // The Go test publishes after the "ready" line, then reads the result.
    const ready = () => process.stdout.write(JSON.stringify({ ready: true }) + '\n');
    finish({ backend: await scenarios.backendRooms({ SockJS }, cfg, ready) });
    return;
  }
  const results = await scenarios.run({ SockJS, ShoalHub: mod.exports }, cfg);
  finish({ results });
}

main().catch((e) => finish({ error: String(e && e.stack ? e.stack : e) }));
