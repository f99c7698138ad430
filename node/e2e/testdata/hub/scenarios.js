// The hub's end-to-end scenarios, run unchanged in Node.js (hub.js, with
// sockjs-client from npm) and in Chromium (browser.js injects this file into
// a page the node serves, beside the node's own sockjs-client and
// hub-client.js). Each scenario collects what happened and the checks it
// failed; node/e2e/hub_test.go turns those into test failures.
//
// run(env, cfg) → {transport: {scenario: {errors: [...], facts: {...}}}}
//   env: {SockJS, ShoalHub}
//   cfg: {base, nodes: [base URLs of each node], prefix, transports: [...],
//         tokens: {ann, bob, carol, blog, blogChannel, expired, badSalt},
//         scenarios: [names] (default all), stepMs}
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.hubScenarios = factory();
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  function waitFor(what, cond, ms) {
    var start = Date.now();
    return new Promise(function (resolve, reject) {
      (function tick() {
        var v;
        try { v = cond(); } catch (e) { return reject(e); }
        if (v) return resolve(v);
        if (Date.now() - start > ms) return reject(new Error('timeout waiting for ' + what));
        setTimeout(tick, 15);
      })();
    });
  }

  function Ctx(env, cfg, transport) {
    this.env = env;
    this.cfg = cfg;
    this.transport = transport;
    this.step = cfg.stepMs || 15000;
    this.errors = [];
    this.facts = {};
    this.closers = [];
  }
  Ctx.prototype.check = function (ok, msg) { if (!ok) this.errors.push(msg); return ok; };
  Ctx.prototype.url = function (base) { return (base || this.cfg.base) + this.cfg.prefix; };

  // raw opens a plain sockjs-client session, the way the seed blog's
  // client code does, and records every message.
  Ctx.prototype.raw = function (transport, base) {
    var self = this;
    var s = {msgs: [], closed: null, open: false};
    s.sock = new this.env.SockJS(this.url(base), null, {transports: [transport || this.transport], timeout: 10000});
    s.sock.onopen = function () { s.open = true; };
    s.sock.onmessage = function (e) {
      var m;
      try { m = JSON.parse(e.data); } catch (err) { m = {unparsed: e.data}; }
      s.msgs.push(m);
    };
    s.sock.onclose = function (e) { s.closed = {code: e.code, reason: e.reason}; };
    s.send = function (m) { s.sock.send(typeof m === 'string' ? m : JSON.stringify(m)); };
    s.find = function (pred) { for (var i = 0; i < s.msgs.length; i++) if (pred(s.msgs[i])) return s.msgs[i]; return null; };
    s.wait = function (what, pred) { return waitFor(what, function () { return s.find(pred); }, self.step); };
    s.waitOpen = function () { return waitFor('open over ' + (transport || self.transport), function () { if (s.closed && !s.open) throw new Error('closed before open: ' + s.closed.code + ' ' + s.closed.reason); return s.open; }, self.step); };
    this.closers.push(function () { s.sock.close(); });
    return s;
  };

  // helper opens a hub-client.js session and waits until it is connected.
  Ctx.prototype.helper = function (token, transport, base) {
    var self = this;
    var hub = new this.env.ShoalHub(this.url(base), {SockJS: this.env.SockJS, token: token, transports: [transport || this.transport],
      minReconnectDelay: 50, maxReconnectDelay: 500, timeout: this.step});
    hub.rawLog = [];
    hub.errors = [];
    hub.on('raw', function (m) { hub.rawLog.push(m); });
    hub.on('error', function (e) { hub.errors.push((e.type || 'error') + ': ' + e.message); });
    this.closers.push(function () { hub.close(); });
    return waitFor('helper connected over ' + (transport || this.transport), function () {
      if (hub.errors.length) throw new Error('helper: ' + hub.errors.join('; '));
      return hub.state === 'connected';
    }, this.step).then(function () { return hub; });
  };
  Ctx.prototype.closeAll = function () {
    this.closers.forEach(function (c) { try { c(); } catch (e) { /* already closed */ } });
    this.closers = [];
  };

  var scenarios = {};

  // The seed blog's client, unchanged: Django signs a string payload (the
  // channel), the page auths when asked and dispatches on data_type.
  scenarios.seedBlog = function (c) {
    var token = c.cfg.tokens.blog, channel = c.cfg.tokens.blogChannel;
    var got = {auth: null, news: [], data: [], errors: []};
    var sock = new c.env.SockJS(c.url(), null, {transports: [c.transport]});
    c.closers.push(function () { sock.close(); });
    sock.onmessage = function (e) {
      var msg = JSON.parse(e.data);
      if (msg.data_type === 'request_auth') {
        sock.send(JSON.stringify({data_type: 'auth', data: {token: token, salt: 'what-old-clients-send'}}));
      } else if (msg.data_type === 'auth') {
        got.auth = msg.data.message;
      } else if (msg.data_type === 'auth_error') {
        got.errors.push(msg.data.message);
      } else if (msg.data_type === 'news') {
        got.news.push(msg);
      } else if (msg.data_type === 'data') {
        got.data.push(msg);
      }
    };
    var pub;
    return waitFor('blog auth', function () { return got.auth || got.errors.length; }, c.step).then(function () {
      c.check(got.auth === 'success', 'blog client auth: ' + JSON.stringify(got));
      // A publisher granted the blog's channel (ann's token lists it).
      return c.helper(c.cfg.tokens.ann, 'websocket');
    }).then(function (h) {
      pub = h;
      return pub.subscribe(channel).ready;
    }).then(function () {
      return pub.publish(channel, {data_type: 'news', title: 'hello blog'});
    }).then(function () {
      return pub.publish(channel, 'plain string');
    }).then(function () {
      return waitFor('blog messages', function () { return got.news.length >= 1 && got.data.length >= 1; }, c.step);
    }).then(function () {
      var n = got.news[0], d = got.data[0];
      c.facts.news = n;
      c.facts.data = d;
      c.check(n.title === 'hello blog' && n.channel === channel && typeof n.offset === 'number', 'object payload arrived as ' + JSON.stringify(n));
      c.check(d.data === 'plain string' && d.channel === channel && d.offset > n.offset, 'string payload arrived as ' + JSON.stringify(d));
    });
  };

  // auth: a good token, a token signed with another salt, an expired one,
  // and a message before auth.
  scenarios.auth = function (c) {
    var good = c.raw(), bad = c.raw(), old = c.raw();
    return Promise.all([good, bad, old].map(function (s) { return s.wait('request_auth', function (m) { return m.data_type === 'request_auth'; }); })).then(function () {
      good.send({data_type: 'subscribe', id: 'early', data: {channel: 'room-x'}});
      return good.wait('Not authenticated', function (m) { return m.data_type === 'error' || m.id === 'early'; });
    }).then(function (m) {
      c.check(m.data_type === 'error' && m.data.message === 'Not authenticated' && m.id === 'early', 'before auth: ' + JSON.stringify(m));
      good.send({data_type: 'auth', id: 1, data: {token: c.cfg.tokens.ann}});
      bad.send({data_type: 'auth', id: 1, data: {token: c.cfg.tokens.badSalt}});
      old.send({data_type: 'auth', id: 1, data: {token: c.cfg.tokens.expired}});
      var isReply = function (m) { return m.id === 1; };
      return Promise.all([good.wait('auth reply', isReply), bad.wait('auth reply', isReply), old.wait('auth reply', isReply)]);
    }).then(function (r) {
      c.facts.good = r[0];
      c.check(r[0].data_type === 'auth' && r[0].data.message === 'success' && r[0].data.user === 'ann', 'good token: ' + JSON.stringify(r[0]));
      c.check(r[1].data_type === 'auth_error' && r[1].data.message === 'Token invalid', 'wrong salt: ' + JSON.stringify(r[1]));
      c.check(r[2].data_type === 'auth_error' && r[2].data.message === 'Token expired', 'expired: ' + JSON.stringify(r[2]));
      good.send({data_type: 'auth', id: 2, data: {token: c.cfg.tokens.ann}});
      return good.wait('second auth reply', function (m) { return m.id === 2; });
    }).then(function (m) {
      c.check(m.data_type === 'auth_error' && m.data.message === 'Already authenticated', 'second auth: ' + JSON.stringify(m));
      good.send('not json');
      good.send({data_type: 'nonsense', data: {}});
      return good.wait('errors', function () {
        return good.msgs.filter(function (x) { return x.data_type === 'error'; }).length >= 3;
      });
    }).then(function () {
      var errs = good.msgs.filter(function (x) { return x.data_type === 'error'; }).map(function (x) { return x.data.message; });
      c.check(errs[1] === 'Invalid JSON' && errs[2] === 'Invalid data type nonsense', 'error replies: ' + JSON.stringify(errs));
    });
  };

  // subscribe: a granted channel, a channel granted to someone else, a
  // room any authenticated user may join.
  scenarios.subscribe = function (c) {
    return c.helper(c.cfg.tokens.ann).then(function (hub) {
      var mine = hub.subscribe('secret-ann'), theirs = hub.subscribe('secret-bob'), room = hub.subscribe('room-open');
      return Promise.all([mine.ready, theirs.ready.then(function () { return 'allowed'; }, function (e) { return e; }), room.ready]).then(function (r) {
        c.check(typeof r[0].offset === 'number', 'granted channel: ' + JSON.stringify(r[0]));
        c.check(r[1] instanceof Error && r[1].type === 'subscribe_error' && r[1].message === 'Permission denied' && r[1].data.channel === 'secret-bob',
          'channel granted to another user: ' + (r[1] instanceof Error ? r[1].type + ' ' + r[1].message + ' ' + JSON.stringify(r[1].data) : r[1]));
        c.check(typeof r[2].offset === 'number', 'open room: ' + JSON.stringify(r[2]));
      });
    });
  };

  // recovery: two subscribers' connections are dropped while publishers
  // (through the balancer) keep publishing: one subscribed to a room, one
  // whose token grants the channel (the auth joins it). Each subscriber
  // starts on one node and comes back, as a new session, on another (its
  // url is switched before the drop), with since (in the subscribe, or in
  // the auth), and gets every message exactly once, recovered true.
  scenarios.recovery = function (c) {
    var run = c.transport + '-' + Date.now();
    var room = 'room-recovery-' + run, granted = c.cfg.tokens.blogChannel;
    var total = 40, dropAt = 12;
    var sub, sub2, pub, pub2, got = [], got2 = [], subscribed = [], sessions = [], sessions2 = [], recovered2 = [];
    // Live references, so a scenario timeout still reports how far it got.
    c.facts.got = got;
    c.facts.gotGranted = got2;
    c.facts.subscribed = subscribed;
    c.facts.recoveredGranted = recovered2;
    c.facts.sessions = sessions;
    // One publisher per channel: each session has its own rate limit.
    var nodes = c.cfg.nodes;
    return Promise.all([c.helper(c.cfg.tokens.bob, null, nodes[0]), c.helper(c.cfg.tokens.blog, null, nodes[1]), c.helper(c.cfg.tokens.ann, 'websocket'),
      c.helper(c.cfg.tokens.ann, 'websocket')]).then(function (h) {
      sub = h[0];
      sub2 = h[1];
      pub = h[2];
      pub2 = h[3];
      sessions.push(sub.session);
      sessions2.push(sub2.session);
      sub.on('connect', function (info) { sessions.push(info.session); });
      sub2.on('connect', function (info) {
        sessions2.push(info.session);
        recovered2.push(info.recovered ? info.recovered[granted] : 'none');
      });
      sub2.on('message', function (m) { if (m.run === run) got2.push(m.n); });
      var s = sub.subscribe(room, function (m) { got.push(m.n); });
      s.on('subscribed', function (r) { subscribed.push({offset: r.offset, recovered: r.recovered, since: s.recovered}); });
      return Promise.all([s.ready, pub.subscribe(room).ready, pub2.subscribe(granted).ready]);
    }).then(function () {
      var i = 0;
      return (function next() {
        if (i === total) return Promise.resolve();
        var n = i++;
        if (n === dropAt) {
          sub.url = c.url(nodes[1]);
          sub2.url = c.url(nodes[2]);
          sub.reconnect();
          sub2.reconnect();
        }
        return Promise.all([
          pub.publish(room, {data_type: 'seq', n: n}),
          pub2.publish(granted, {data_type: 'seq', run: run, n: n}),
        ]).then(function () { return sleep(15); }).then(next);
      })();
    }).then(function () {
      return waitFor('all ' + total + ' messages on both channels', function () { return got.length >= total && got2.length >= total; }, c.step).catch(function (e) {
        c.check(false, e.message + ': got ' + got.length + ' and ' + got2.length);
      });
    }).then(function () {
      return Promise.all([sub.ping(), sub2.ping()]); // anything duplicated would have come before the pong
    }).then(function () {
      var want = [];
      for (var k = 0; k < total; k++) want.push(k);
      [[sub, room, got, 'room'], [sub2, granted, got2, 'granted channel']].forEach(function (x) {
        var perOffset = {};
        x[0].rawLog.forEach(function (m) { if (m.channel === x[1]) perOffset[m.offset] = (perOffset[m.offset] || 0) + 1; });
        var dups = Object.keys(perOffset).filter(function (o) { return perOffset[o] !== 1; });
        c.check(JSON.stringify(x[2]) === JSON.stringify(want), x[3] + ': received ' + JSON.stringify(x[2]));
        c.check(dups.length === 0, x[3] + ': offsets delivered more than once by the server: ' + JSON.stringify(dups));
      });
      c.check(subscribed.length >= 2, 'room: no re-subscribe after the forced reconnect: ' + JSON.stringify(subscribed));
      c.check(subscribed.slice(1).every(function (s) { return s.recovered === true; }), 'room: recovered flag: ' + JSON.stringify(subscribed));
      c.check(recovered2.length >= 1 && recovered2.every(function (r) { return r === true; }), 'granted channel: auth recovered ' + JSON.stringify(recovered2));
      c.check(sessions.length >= 2 && sessions[0] !== sessions[sessions.length - 1], 'room: no new session: ' + JSON.stringify(sessions));
      c.check(sessions2.length >= 2 && sessions2[0] !== sessions2[sessions2.length - 1], 'granted: no new session: ' + JSON.stringify(sessions2));
    });
  };

  // acks: every event gets exactly one ack with its id.
  scenarios.acks = function (c) {
    var count = 20;
    return c.helper(c.cfg.tokens.carol).then(function (hub) {
      var sent = [];
      for (var i = 0; i < count; i++) sent.push(hub.emit('e2e', {i: i}));
      return Promise.all(sent).then(function (replies) {
        return hub.ping().then(function () { return replies; });
      }).then(function (replies) {
        var acks = {};
        hub.rawLog.forEach(function (m) { if (m.data_type === 'ack') acks[m.id] = (acks[m.id] || 0) + 1; });
        var ids = Object.keys(acks);
        c.facts.firstAck = replies[0];
        c.check(ids.length === count && ids.every(function (id) { return acks[id] === 1; }), 'acks per id: ' + JSON.stringify(acks));
        c.check(replies.every(function (r) { return r && r.received === true; }), 'ack data: ' + JSON.stringify(replies[0]));
      });
    });
  };

  // presence: ann, bob twice (two sessions) and carol, one session on
  // each node directly; every node counts the same users.
  scenarios.presence = function (c) {
    var channel = 'room-presence-' + c.transport + '-' + Date.now();
    var nodes = c.cfg.nodes;
    var opens = [c.helper(c.cfg.tokens.ann), c.helper(c.cfg.tokens.bob), c.helper(c.cfg.tokens.bob, 'websocket')];
    nodes.forEach(function (n) { opens.push(c.helper(c.cfg.tokens.carol, 'websocket', n)); });
    var hubs;
    return Promise.all(opens).then(function (h) {
      hubs = h;
      return Promise.all(hubs.map(function (hub) { return hub.subscribe(channel).ready; }));
    }).then(function () {
      var last = [];
      var askers = hubs.slice(3); // one per node
      var ask = function () {
        return Promise.all(askers.map(function (hub) { return hub.presence(channel); })).then(function (r) { last = r; return r; });
      };
      var agree = function (r) {
        return r.every(function (p) { return p.count === 3 && JSON.stringify((p.users || []).slice().sort()) === '["ann","bob","carol"]'; });
      };
      var deadline = Date.now() + c.step;
      return (function poll() {
        return ask().then(function (r) {
          if (agree(r)) return;
          if (Date.now() > deadline) { c.check(false, 'presence per node: ' + JSON.stringify(last)); return; }
          return sleep(100).then(poll);
        });
      })().then(function () {
        c.facts.presence = last[0];
        // bob's websocket session leaves: bob still has one, the count stays.
        return hubs[2].unsubscribe(channel);
      }).then(function () { return hubs[0].unsubscribe(channel); }).then(function () {
        deadline = Date.now() + c.step;
        return (function poll() {
          return ask().then(function (r) {
            if (r.every(function (p) { return p.count === 2; })) return;
            if (Date.now() > deadline) { c.check(false, 'after ann left, presence per node: ' + JSON.stringify(r)); return; }
            return sleep(100).then(poll);
          });
        })();
      });
    });
  };

  // limits: an oversize message is refused; then pings in rounds, each
  // round's replies awaited, until the session is closed: "Rate limit
  // exceeded" errors come first, then 4008. (Rounds, because a polling
  // session's sends are spread over the nodes, each of which allows the
  // rate: growing rounds find the limit whatever the spread. Replies queued
  // when the session closes are no longer lost on polling transports: the
  // next poll gets them before the close frame.)
  scenarios.limits = function (c) {
    var s = c.raw();
    var big = new Array(c.cfg.maxMessageSize + 100).join('x');
    var sent = 0, rounds = 0;
    function replies() {
      return s.msgs.filter(function (m) { return m.data_type === 'pong' || (m.data_type === 'error' && m.data.message === 'Rate limit exceeded'); }).length;
    }
    return s.wait('request_auth', function (m) { return m.data_type === 'request_auth'; }).then(function () {
      s.send({data_type: 'auth', id: 1, data: {token: c.cfg.tokens.carol}});
      return s.wait('auth', function (m) { return m.id === 1; });
    }).then(function () {
      s.send({data_type: 'ping', id: 'big', data: {pad: big}});
      return s.wait('Message too big', function (m) { return m.id === 'big' || (m.data_type === 'error' && m.data.message === 'Message too big'); });
    }).then(function (m) {
      c.check(m.data_type === 'error' && m.data.message === 'Message too big', 'oversize message: ' + JSON.stringify(m));
      return (function round() {
        if (s.closed || rounds >= c.cfg.floodRounds) return Promise.resolve();
        rounds++;
        // Small rounds until the limit bites, so its errors arrive before
        // the round that closes the session; then big ones.
        var size = s.find(function (m) { return m.data_type === 'error' && m.data.message === 'Rate limit exceeded'; }) ? c.cfg.floodRound * 4 : c.cfg.floodRound;
        for (var i = 0; i < size; i++) s.send({data_type: 'ping', data: {}});
        sent += size;
        return waitFor('replies to round ' + rounds, function () { return s.closed || replies() >= sent; }, c.step).then(round);
      })();
    }).then(function () {
      var limited = s.msgs.filter(function (m) { return m.data_type === 'error' && m.data.message === 'Rate limit exceeded'; }).length;
      c.facts.rateLimited = limited;
      c.facts.pongs = s.msgs.filter(function (m) { return m.data_type === 'pong'; }).length;
      c.facts.sent = sent;
      c.facts.rounds = rounds;
      c.facts.closed = s.closed;
      c.check(limited >= 1, 'no "Rate limit exceeded" error in ' + s.msgs.length + ' messages');
      c.check(s.closed && s.closed.code === 4008 && s.closed.reason === 'Policy violation', 'closed with ' + JSON.stringify(s.closed) + ' after ' + sent + ' pings');
    });
  };

  // backendRooms is not one of the per-transport scenarios: the backend
  // (node/e2e/hub_backend_test.go) publishes while it runs. Per room of
  // cfg.backend.rooms ({room: token granting it}), one raw session on each
  // of cfg.transports authenticates with the room's token (the auth joins
  // the room); ready() says all are in, and the backend publishes
  // cfg.backend.want messages per room, each with a "src" field. Once every
  // session has that many, a ping per session flushes anything more that
  // was already queued for it (a duplicate, the other room's); the
  // messages with a "src" each session got go back for the Go test to judge.
  function backendRooms(env, cfg, ready) {
    var c = new Ctx(env, cfg, null);
    var b = cfg.backend;
    var sessions = [];
    Object.keys(b.rooms).forEach(function (room) {
      cfg.transports.forEach(function (tr) {
        var s = c.raw(tr);
        s.room = room;
        s.transport = tr;
        sessions.push(s);
      });
    });
    var published = function (s) { return s.msgs.filter(function (m) { return m.src !== undefined; }); };
    var start = Date.now(), readyMs;
    return Promise.all(sessions.map(function (s) {
      return s.wait('request_auth over ' + s.transport, function (m) { return m.data_type === 'request_auth'; }).then(function () {
        s.send({data_type: 'auth', id: 'auth', data: {token: b.rooms[s.room]}});
        return s.wait('auth reply over ' + s.transport, function (m) { return m.id === 'auth'; });
      }).then(function (m) {
        if (!(m.data_type === 'auth' && m.data.message === 'success' && (m.data.channels || []).indexOf(s.room) >= 0)) {
          throw new Error(s.room + ' over ' + s.transport + ': auth ' + JSON.stringify(m));
        }
      });
    })).then(function () {
      readyMs = Date.now() - start;
      ready();
      return Promise.all(sessions.map(function (s) {
        return waitFor(b.want + ' messages in ' + s.room + ' over ' + s.transport, function () { return published(s).length >= b.want; }, c.step)
          .catch(function (e) { c.check(false, e.message + ': got ' + published(s).length); });
      }));
    }).then(function () {
      sessions.forEach(function (s) { s.send({data_type: 'ping', id: 'flush', data: {}}); });
      return Promise.all(sessions.map(function (s) {
        return s.wait('pong over ' + s.transport, function (m) { return m.id === 'flush'; });
      }));
    }).catch(function (e) {
      c.check(false, 'failed: ' + (e && e.message ? e.message : String(e)));
    }).then(function () {
      c.closeAll();
      return {
        errors: c.errors, readyMs: readyMs, ms: Date.now() - start,
        sessions: sessions.map(function (s) { return {room: s.room, transport: s.transport, closed: s.closed, got: published(s)}; }),
      };
    });
  }

  var order = ['seedBlog', 'auth', 'subscribe', 'recovery', 'acks', 'presence', 'limits'];

  function runTransport(env, cfg, transport) {
    var out = {};
    var names = cfg.scenarios || order;
    var i = 0;
    return (function next() {
      if (i === names.length) return Promise.resolve(out);
      var name = names[i++];
      var c = new Ctx(env, cfg, transport);
      var start = Date.now();
      var limit = cfg.scenarioMs || 3 * c.step;
      var timer;
      var timeout = new Promise(function (resolve, reject) {
        timer = setTimeout(function () { reject(new Error('scenario timeout after ' + limit + ' ms')); }, limit);
      });
      return Promise.race([Promise.resolve().then(function () { return scenarios[name](c); }), timeout]).then(function () {
        clearTimeout(timer);
      }, function (e) {
        clearTimeout(timer);
        throw e;
      }).catch(function (e) {
        c.errors.push('failed: ' + (e && e.message ? e.message : String(e)));
      }).then(function () {
        c.closeAll();
        out[name] = {errors: c.errors, facts: c.facts, ms: Date.now() - start};
        return next();
      });
    })();
  }

  // run runs the transports (cfg.parallel: all at once, else one after
  // another), each one's scenarios in order.
  function run(env, cfg) {
    var results = {};
    if (cfg.parallel) {
      return Promise.all(cfg.transports.map(function (t) {
        return runTransport(env, cfg, t).then(function (r) { results[t] = r; });
      })).then(function () { return results; });
    }
    var i = 0;
    return (function next() {
      if (i === cfg.transports.length) return Promise.resolve(results);
      var t = cfg.transports[i++];
      return runTransport(env, cfg, t).then(function (r) { results[t] = r; return next(); });
    })();
  }

  return {run: run, scenarios: scenarios, order: order, backendRooms: backendRooms};
});
