// What the browser drivers (driver.js, hub.js) share: their one JSON
// result line, printed when the run ends or its deadline passes (what
// finished by then is still judged), and the watch over every page.
'use strict';

// Every request and WebSocket a page or its iframes make must stay on
// loopback; anything else is reported (and Chromium could not reach it).
const loopback = /^(https?|wss?):\/\/127\.0\.0\.1(:\d+)?\//;

// start begins a run that fills result; set run.browser once launched.
function start(result, timeoutMs) {
  Object.assign(result, { offLoopback: [], pageErrors: [] });
  const run = { result, browser: null };
  const deadline = setTimeout(() => run.finish('driver timeout'), timeoutMs);
  // finish prints the result, closes the browser and ends the process.
  run.finish = async (error) => {
    if (error) result.error = String(error && error.stack ? error.stack : error);
    clearTimeout(deadline);
    process.stdout.write(JSON.stringify(result) + '\n');
    if (run.browser) await Promise.race([run.browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
    process.exit(0);
  };
  // watch reports page's requests off loopback and its errors (but those
  // ignored matches), and copies its console errors to stderr.
  run.watch = (page, label, ignored) => {
    page.on('request', (r) => {
      if (!loopback.test(r.url()) && !r.url().startsWith('data:')) result.offLoopback.push(r.url());
    });
    page.on('websocket', (ws) => {
      if (!loopback.test(ws.url())) result.offLoopback.push(ws.url());
    });
    page.on('pageerror', (e) => {
      if (!ignored || !ignored.test(String(e))) result.pageErrors.push(`${label}: ${e}`);
    });
    page.on('console', (m) => {
      if (m.type() === 'error') process.stderr.write(`[${label}] console: ${m.text()}\n`);
    });
  };
  return run;
}

module.exports = { start };
