// Drives Debian's Chromium (playwright-core from node/e2e/testdata/browser)
// through the Django example: two users log in, open one room, see each
// other's messages and a presence count of 2; then one opens the
// dashboard. Prints one JSON line; django_test.go judges it and runs the
// dashboard command when the line says the page is ready.
//
//   node browser.js '<json config>'    config: {chromium, site, modules, timeoutMs}
'use strict';
const cfg = JSON.parse(process.argv[2]);
const { chromium } = require(require('path').join(cfg.modules, 'playwright-core'));
const readline = require('readline');

const result = { chat: {}, pageErrors: [] };
let browser = null;

function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

async function finish(error) {
  if (error) result.error = String(error && error.stack ? error.stack : error);
  result.done = true;
  out(result);
  if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  process.exit(0);
}
setTimeout(() => finish('driver timeout'), cfg.timeoutMs);

async function login(user) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => result.pageErrors.push(`${user}: ${e}`));
  await page.goto(cfg.site + '/login/');
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', user + '-password');
  await Promise.all([page.waitForNavigation(), page.click('#login')]);
  return page;
}

async function main() {
  browser = await chromium.launch({ executablePath: cfg.chromium, args: ['--no-sandbox'] });
  const ann = await login('ann');
  const bob = await login('bob');
  for (const p of [ann, bob]) {
    await p.goto(cfg.site + '/room/lobby/');
    await p.waitForFunction(() => document.getElementById('status').textContent === 'connected', null, { timeout: 20000 });
  }
  const say = async (p, text) => { await p.fill('#text', text); await p.click('#say button'); };
  await say(ann, 'hello from ann');
  await say(bob, 'hello from bob');
  for (const [name, p] of [['ann', ann], ['bob', bob]]) {
    await p.waitForFunction(() => {
      const log = document.getElementById('log').textContent;
      return log.includes('ann: hello from ann') && log.includes('bob: hello from bob');
    }, null, { timeout: 20000 });
    await p.waitForFunction(() => document.getElementById('presence').textContent === '2', null, { timeout: 20000 })
      .catch(() => {});
    result.chat[name] = {
      log: await p.textContent('#log'),
      presence: await p.textContent('#presence'),
    };
  }
  await ann.goto(cfg.site + '/dashboard/');
  await ann.waitForFunction(() => document.getElementById('status').textContent === 'connected', null, { timeout: 20000 });
  out({ dashboardReady: true });
  // The Go test now runs push_dashboard --count 3.
  await ann.waitForFunction(() => document.getElementById('tick').textContent === '3', null, { timeout: 30000 });
  result.dashboard = { tick: await ann.textContent('#tick'), users: await ann.textContent('#users') };
}

main().then(() => finish(), finish);
