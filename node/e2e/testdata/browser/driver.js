// Drives Debian's Chromium (through playwright-core) to run the real
// sockjs-client 1.6.1 in a browser page against Shoal, for the transports
// only a browser has (iframe-*, jsonp-polling) and the others. Prints one
// JSON line with what happened; the Go test (node/e2e/browser_test.go)
// judges it.
//
//   node driver.js '<json config>'
//
// config: {
//   chromium: path of the browser,
//   page:     URL of page.html (served by the Go test, on another origin
//             than the SockJS server so that sockjs-client takes its
//             cross-domain paths: iframe transports, CORS),
//   base:     the SockJS server's base URL,
//   echo:      {endpoint, transports: [...], count},
//   broadcast: {endpoint, groups: [[transport, ...], ...], count},
//   oversize:  {endpoint, transports: [...], bytes},
//   timeoutMs: overall bound
// }
//
// One browser, one fresh context (own cookies and connection pool) per
// SockJS session, one page in each.
'use strict';
const { chromium } = require('playwright-core');

const cfg = JSON.parse(process.argv[2]);
const stepMs = 20000; // bound of any single wait inside a page
const run = require('./run').start({ echo: [], broadcast: [], oversize: [] }, cfg.timeoutMs);
const result = run.result;

// newPage opens page.html in a fresh context. servers collects the
// X-Shoal-Server header (which node HAProxy chose) of every response.
async function newPage(label, servers) {
  const context = await run.browser.newContext();
  const page = await context.newPage();
  run.watch(page, label);
  page.on('response', (r) => {
    const node = r.headers()['x-shoal-server'];
    if (node && servers.length < 100 && !servers.includes(node)) servers.push(node);
    if (r.status() >= 400) process.stderr.write(`[${label}] ${r.status()} ${r.request().method()} ${r.url()}\n`);
  });
  page.on('requestfailed', (r) => {
    process.stderr.write(`[${label}] request failed: ${r.method()} ${r.url()} ${r.failure() && r.failure().errorText}\n`);
  });
  await page.goto(cfg.page);
  return { context, page };
}

// open starts a session with only `transport` allowed and returns what
// sockjs-client reports as its transport.
function open(page, endpoint, transport) {
  return page.evaluate(([url, tr, ms]) => window.shoal.open(url, tr, ms), [cfg.base + endpoint, transport, stepMs]);
}

// Results go into `result` as they come, so a timeout reports them.
async function echoOne(transport, i) {
  const r = { transport, got: null, received: [], servers: [], error: 'not finished' };
  result.echo[i] = r;
  let ctx = null;
  const start = Date.now();
  try {
    const { context, page } = await newPage(`echo ${transport}`, r.servers);
    ctx = context;
    r.pageMs = Date.now() - start;
    r.got = await open(page, cfg.echo.endpoint, transport);
    r.openMs = Date.now() - start - r.pageMs;
    r.received = await page.evaluate(([n, ms]) => window.shoal.echo(n, ms), [cfg.echo.count, stepMs]);
    await page.evaluate(() => window.shoal.close());
    r.error = null;
  } catch (e) {
    r.error = String(e.message || e);
  }
  r.ms = Date.now() - start;
  if (ctx) await ctx.close().catch(() => {});
  return r;
}

// oversizeOne sends one message bigger than the server takes and reports
// how the session ended.
async function oversizeOne(transport, i) {
  const r = { transport, got: null, received: [], closed: null, servers: [], error: 'not finished' };
  result.oversize[i] = r;
  let ctx = null;
  try {
    const { context, page } = await newPage(`oversize ${transport}`, r.servers);
    ctx = context;
    r.got = await open(page, cfg.oversize.endpoint, transport);
    Object.assign(r, await page.evaluate(([n, ms]) => window.shoal.oversize(n, ms), [cfg.oversize.bytes, stepMs]));
    r.error = null;
  } catch (e) {
    r.error = String(e.message || e);
  }
  if (ctx) await ctx.close().catch(() => {});
}

// broadcastGroup opens one session per transport of the group (each in
// its own context), then every session sends numbered messages tagged
// "g<group>s<session>" and waits for every session's end marker.
async function broadcastGroup(g, group) {
  const sessions = group.map((transport, i) => ({ transport, tag: `g${g}s${i}`, got: null, received: [], servers: [], error: null }));
  result.broadcast[g] = { sessions, ms: null };
  const pages = [];
  const start = Date.now();
  try {
    for (const s of sessions) {
      const p = await newPage(`broadcast ${s.tag} ${s.transport}`, s.servers);
      pages.push(p);
      try {
        s.got = await open(p.page, cfg.broadcast.endpoint, s.transport);
      } catch (e) {
        s.error = String(e.message || e);
        throw e;
      }
    }
    // Every session has joined the channel before its open frame, so
    // none can miss a message sent from now on.
    await Promise.all(pages.map((p, i) =>
      p.page.evaluate(([tag, n]) => window.shoal.broadcastSend(tag, n), [sessions[i].tag, cfg.broadcast.count])));
    const tags = sessions.map((s) => s.tag);
    await Promise.all(pages.map(async (p, i) => {
      try {
        sessions[i].received = await p.page.evaluate(([t, ms]) => window.shoal.waitEnds(t, ms), [tags, stepMs]);
      } catch (e) {
        sessions[i].error = String(e.message || e);
        sessions[i].received = await p.page.evaluate(() => window.shoal.received).catch(() => []);
      }
    }));
    await Promise.all(pages.map((p) => p.page.evaluate(() => window.shoal.close()).catch(() => {})));
  } catch (e) {
    sessions.forEach((s) => { if (!s.got && !s.error) s.error = `not run: group failed (${e.message || e})`; });
  }
  await Promise.all(pages.map((p) => p.context.close().catch(() => {})));
  result.broadcast[g].ms = Date.now() - start;
}

async function main() {
  const t0 = Date.now();
  run.browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    // The network is closed: without these Chromium's own background
    // connections (updates, sync, field trials) are refused and slow it.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30000,
  });
  result.launchMs = Date.now() - t0;
  const echoes = Promise.all([...cfg.echo.transports.map(echoOne), ...cfg.oversize.transports.map(oversizeOne)]);
  const broadcasts = (async () => {
    for (let g = 0; g < cfg.broadcast.groups.length; g++) await broadcastGroup(g, cfg.broadcast.groups[g]);
  })();
  await Promise.all([echoes, broadcasts]);
  result.totalMs = Date.now() - t0;
}

main().then(() => run.finish(), (e) => run.finish(e));
