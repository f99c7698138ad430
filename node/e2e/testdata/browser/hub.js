// Drives Debian's Chromium (playwright-core) for the hub's end-to-end
// tests: the hub scenarios (../hub/scenarios.js) in pages the node serves,
// on every transport Chromium has; the chat demo with two users; the echo
// demo page's visible errors. Prints one JSON line; node/e2e/hub_test.go
// judges it.
//
//   node hub.js '<json config>'
//
// config: {chromium, base, nodes, prefix, tokens, transports, maxMessageSize,
//          flood, chat: {room, screenshotDir}, timeoutMs}
'use strict';
const path = require('path');
const { chromium } = require('playwright-core');

const cfg = JSON.parse(process.argv[2]);
const run = require('./run').start({ scenarios: {}, chat: null, echo: null }, cfg.timeoutMs);
const result = run.result;

async function newPage(label, contextOnly) {
  const context = await run.browser.newContext({ viewport: { width: 900, height: 640 } });
  if (contextOnly) return { context };
  const page = await context.newPage();
  watch(page, label);
  return { context, page };
}

// sockjs-client's jsonp receiver deletes its callback when its session
// closes; the parked poll's answer then calls a missing function.
const jsonpLateAnswer = /_jp\.\w+ is not a function/;

function watch(page, label) {
  run.watch(page, label, jsonpLateAnswer);
}

// scenarios runs scenarios.js in a page of the node (the chat demo page,
// which loads the node's sockjs-client and hub-client.js), one context per
// transport. jsonp-polling gets a fresh page per scenario: a closed
// jsonp-polling session leaves its parked poll (a script request, which
// removing the tag does not cancel) holding one of the six connections to
// the host until its page goes.
async function scenarios() {
  const names = cfg.scenarios || ['seedBlog', 'auth', 'subscribe', 'recovery', 'acks', 'presence', 'limits'];
  for (const transport of cfg.transports) {
    result.scenarios[transport] = {};
    const { context } = await newPage(transport, true);
    const groups = transport === 'jsonp-polling' ? names.map((n) => [n]) : [names];
    for (const group of groups) {
      const label = transport + '/' + group.join(',');
      const t0 = Date.now();
      const page = await context.newPage();
      watch(page, label);
      try {
        await page.goto(cfg.base + '/chat/');
        await page.waitForFunction(() => typeof SockJS === 'function' && typeof ShoalHub === 'function', null, { timeout: 15000 });
        await page.addScriptTag({ path: path.join(__dirname, '..', 'hub', 'scenarios.js') });
        (result.timings = result.timings || []).push(`${label}: page ready in ${Date.now() - t0} ms`);
        const c = Object.assign({}, cfg, { transports: [transport], scenarios: group });
        const r = await page.evaluate((c) => hubScenarios.run({ SockJS: window.SockJS, ShoalHub: window.ShoalHub }, c), c);
        Object.assign(result.scenarios[transport], r[transport]);
      } catch (e) {
        for (const name of group) result.scenarios[transport][name] = { errors: ['driver: ' + e], facts: {} };
      } finally {
        await page.close();
      }
    }
    await context.close();
  }
}

// chat: ann and bob open the demo in one room through the balancer; each
// sends a line; both must see both lines and a presence count of 2. Bob's
// page also publishes a line claiming to be mallory's: the hub's "from"
// stamp names bob, and so does the demo.
async function chat() {
  const out = { users: {} };
  // ann on a websocket, bob on xhr-polling (whose requests hop nodes).
  const users = [['ann', cfg.tokens.ann, 'websocket'], ['bob', cfg.tokens.bob, 'xhr-polling']];
  const pages = [];
  for (const [user, tok, transport] of users) {
    const { context, page } = await newPage('chat-' + user);
    pages.push({ user, context, page });
    await page.goto(`${cfg.base}/chat/?room=${encodeURIComponent(cfg.chat.room)}&transports=${transport}#token=${encodeURIComponent(tok)}`);
  }
  for (const p of pages) {
    await p.page.waitForFunction(() => document.getElementById('status').textContent.startsWith('connected'), null, { timeout: 20000 });
  }
  for (const p of pages) {
    await p.page.fill('#text', `hello from ${p.user}`);
    await p.page.click('#send');
    await p.page.waitForFunction(() => document.getElementById('text').value === '', null, { timeout: 10000 });
  }
  await pages[1].page.evaluate(([room, tok]) => new Promise((resolve, reject) => {
    const h = new ShoalHub(config.hubPrefix, { token: tok });
    h.subscribe(room).ready.then(() => h.publish(room, { data_type: 'chat', user: 'mallory', from: { user: 'mallory' }, text: 'forged name' }))
      .then(() => { h.close(); resolve(); }, (err) => { h.close(); reject(err); });
  }), [cfg.chat.room, cfg.tokens.bob]);
  for (const p of pages) {
    await p.page.waitForFunction(() => {
      const texts = Array.from(document.querySelectorAll('#log .msg')).map((d) => d.textContent);
      return texts.some((t) => t.includes('hello from ann')) && texts.some((t) => t.includes('hello from bob')) &&
        texts.some((t) => t.includes('forged name')) &&
        document.getElementById('presence').dataset.count === '2';
    }, null, { timeout: 20000 }).catch(() => {});
    out.users[p.user] = await p.page.evaluate(() => ({
      status: document.getElementById('status').textContent,
      me: document.getElementById('me').textContent,
      presence: document.getElementById('presence').textContent,
      count: document.getElementById('presence').dataset.count,
      messages: Array.from(document.querySelectorAll('#log .msg')).map((d) => d.textContent),
      error: document.getElementById('error').textContent,
    }));
    const shot = path.join(cfg.chat.screenshotDir, `shoal-chat-${p.user}.png`);
    await p.page.screenshot({ path: shot });
    out.users[p.user].screenshot = shot;
  }
  // A third visitor joins late: history on join shows the earlier lines.
  const { context, page } = await newPage('chat-carol');
  await page.goto(`${cfg.base}/chat/?room=${encodeURIComponent(cfg.chat.room)}#token=${encodeURIComponent(cfg.tokens.carol)}`);
  await page.waitForFunction(() => document.querySelectorAll('#log .msg').length >= 2, null, { timeout: 20000 }).catch(() => {});
  out.lateJoiner = await page.evaluate(() => Array.from(document.querySelectorAll('#log .msg')).map((d) => d.textContent));
  await context.close();
  for (const p of pages) await p.context.close();
  return out;
}

// echo: the echo demo page works with the node's sockjs-client, and shows
// a visible error when sockjs-client cannot load or the server cannot be
// reached; Send then keeps the text and does not reload the page.
async function echo() {
  const out = {};
  {
    const { context, page } = await newPage('echo');
    await page.goto(cfg.base + '/');
    await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('connected'), null, { timeout: 20000 });
    await page.fill('#msg', 'echo me');
    await page.click('button:text("Send")');
    await page.waitForFunction(() => document.getElementById('log').textContent.includes('< echo me'), null, { timeout: 10000 }).catch(() => {});
    out.works = await page.evaluate(() => ({ status: document.getElementById('status').textContent, log: document.getElementById('log').textContent }));
    await context.close();
  }
  {
    const { context, page } = await newPage('echo-no-sockjs');
    await page.route('**/sockjs.min.js', (r) => r.abort());
    await page.goto(cfg.base + '/');
    await page.waitForFunction(() => document.getElementById('error').textContent !== '', null, { timeout: 10000 }).catch(() => {});
    let navigated = false;
    page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigated = true; });
    await page.fill('#msg', 'keep me');
    await page.click('button:text("Send")');
    await page.waitForTimeout(300); // a reload would have started by now
    out.noSockJS = await page.evaluate(() => ({
      error: document.getElementById('error').textContent,
      visible: getComputedStyle(document.getElementById('error')).display !== 'none',
      msg: document.getElementById('msg').value,
    }));
    out.noSockJS.navigated = navigated;
    await page.screenshot({ path: path.join(cfg.chat.screenshotDir, 'shoal-echo-no-sockjs.png') });
    await context.close();
  }
  {
    const { context, page } = await newPage('echo-no-server');
    await page.route('**/echo/**', (r) => r.abort());
    await page.goto(cfg.base + '/');
    await page.waitForFunction(() => document.getElementById('error').textContent !== '', null, { timeout: 30000 }).catch(() => {});
    out.noServer = await page.evaluate(() => ({
      error: document.getElementById('error').textContent,
      visible: getComputedStyle(document.getElementById('error')).display !== 'none',
      status: document.getElementById('status').textContent,
    }));
    await context.close();
  }
  return out;
}

(async () => {
  const t0 = Date.now();
  run.browser = await chromium.launch({ executablePath: cfg.chromium, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  result.launchMs = Date.now() - t0;
  let t = Date.now();
  await scenarios();
  result.scenariosMs = Date.now() - t;
  t = Date.now();
  try { result.chat = await chat(); } catch (e) { result.chatError = String(e); }
  result.chatMs = Date.now() - t;
  t = Date.now();
  try { result.echo = await echo(); } catch (e) { result.echoError = String(e); }
  result.echoMs = Date.now() - t;
  await run.finish();
})().catch((e) => run.finish(e));
