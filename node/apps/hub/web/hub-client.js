/*
 * hub-client.js: a small browser helper for Shoal's hub (docs/hub-client.md).
 * Hand-written, no build step; needs sockjs-client (window.SockJS, or
 * options.SockJS). Works as a plain <script> (window.ShoalHub) and as a
 * CommonJS module (require('./hub-client.js')).
 *
 *   var hub = new ShoalHub('/hub', {token: '…'});
 *   var room = hub.subscribe('room-1', function (msg) { … });
 *   hub.publish('room-1', {data_type: 'chat', text: 'hi'}).then(…);
 *   hub.emit('typing', {room: 'room-1'}).then(function (reply) { … });
 *   hub.presence('room-1').then(function (p) { p.count, p.users });
 *
 * It reconnects with backoff, authenticates again, and re-subscribes every
 * channel with `since` = the last offset it delivered, so nothing published
 * meanwhile is missed while the channel log still holds it.
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.ShoalHub = factory();
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  var ERROR_TYPES = {error: true, auth_error: true, subscribe_error: true};

  function ShoalHub(url, options) {
    if (!(this instanceof ShoalHub)) return new ShoalHub(url, options);
    options = options || {};
    this.url = url;
    this.options = options;
    this.SockJS = options.SockJS || (typeof SockJS !== 'undefined' ? SockJS : null);
    if (!this.SockJS) throw new Error('ShoalHub: sockjs-client is not loaded');
    this.timeout = options.timeout || 10000;           // per request, ms
    this.minDelay = options.minReconnectDelay || 500;  // ms
    this.maxDelay = options.maxReconnectDelay || 15000; // ms
    this.state = 'disconnected'; // connecting, authenticating, connected, closed
    this.user = null;
    this.session = null;
    this.subs = {};      // channel → Subscription
    this.granted = [];   // channels the token grants (joined by the auth)
    this._offsets = {};  // channel → offset of the last message delivered
    this._handlers = {}; // event → [fn]
    this._pending = {};  // id → {resolve, reject, timer}
    this._nextId = 1;
    this._attempt = 0;
    this._sock = null;
    this._timer = null;
    if (options.autoConnect !== false) this.connect();
  }

  // Events: connect ({user, channels, session}), disconnect ({code, reason}),
  // error (Error; auth errors have .type 'auth_error'), message (every
  // delivered channel message, once), join / leave, state (the new state),
  // raw (every message from the server as it came).
  ShoalHub.prototype.on = function (event, fn) {
    (this._handlers[event] = this._handlers[event] || []).push(fn);
    return this;
  };
  ShoalHub.prototype.off = function (event, fn) {
    var list = this._handlers[event] || [];
    this._handlers[event] = list.filter(function (f) { return f !== fn; });
    return this;
  };
  ShoalHub.prototype._fire = function (event, arg) {
    var list = (this._handlers[event] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try { list[i](arg); } catch (e) { if (typeof console !== 'undefined') console.error(e); }
    }
  };
  ShoalHub.prototype._setState = function (state) {
    if (this.state === state) return;
    this.state = state;
    this._fire('state', state);
  };

  ShoalHub.prototype.connect = function () {
    if (this._sock || this.state === 'closed') return;
    var self = this;
    clearTimeout(this._timer);
    this._setState('connecting');
    var sockOptions = {};
    if (this.options.transports) sockOptions.transports = this.options.transports;
    var sock = this._sock = new this.SockJS(this.url, null, sockOptions);
    sock.onopen = function () {
      if (self._sock !== sock) return;
      self.transport = sock.transport;
      self._authenticate();
    };
    sock.onmessage = function (e) {
      if (self._sock !== sock) return;
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      self._receive(msg);
    };
    sock.onclose = function (e) {
      if (self._sock !== sock) return;
      self._sock = null;
      self._closed(e.code, e.reason);
    };
  };

  // _authenticate sends the token (a string, or a function returning one
  // or a promise of one, asked again at every connect) or, without one,
  // is connected at once (a hub running open).
  ShoalHub.prototype._authenticate = function () {
    var self = this;
    var token = this.options.token;
    if (!token) {
      this._ready({});
      return;
    }
    this._setState('authenticating');
    Promise.resolve(typeof token === 'function' ? token() : token).then(function (tok) {
      // The auth itself joins the granted channels again: it recovers
      // them from the last offsets seen.
      var auth = {token: tok}, since = {}, any = false;
      for (var i = 0; i < self.granted.length; i++) {
        var ch = self.granted[i];
        if (self._offsets[ch] !== undefined) { since[ch] = self._offsets[ch]; any = true; }
      }
      if (any) auth.since = since;
      return self._request('auth', auth);
    }).then(function (data) {
      self._ready(data || {});
    }, function (err) {
      if (err.type === 'auth_error') {
        // A bad token will not get better by retrying with it: stop,
        // unless a token function may bring a fresh one, or the backend
        // that checks tokens was unavailable for a moment.
        self._fire('error', err);
        var retry = err.message === 'Backend unavailable' || (typeof token === 'function' && err.message === 'Token expired');
        if (!retry) self.close();
        else if (self._sock) self._sock.close();
      } else if (err.type === 'error' && /data type/.test(err.message)) {
        self._ready({}); // an open hub that knows no auth
      } else if (self._sock) {
        self._sock.close();
      }
    });
  };

  ShoalHub.prototype._ready = function (data) {
    this._attempt = 0;
    this.user = data.user || null;
    this.session = data.session || null;
    this.granted = data.channels || [];
    this._setState('connected');
    this._fire('connect', data);
    var recovered = data.recovered || {};
    for (var ch in this.subs) {
      if (this.granted.indexOf(ch) >= 0) this.subs[ch]._joined(recovered[ch]);
      else this.subs[ch]._send();
    }
  };

  ShoalHub.prototype._closed = function (code, reason) {
    for (var id in this._pending) {
      var p = this._pending[id];
      clearTimeout(p.timer);
      p.reject(new Error('disconnected'));
    }
    this._pending = {};
    for (var ch in this.subs) this.subs[ch].state = 'pending';
    this._fire('disconnect', {code: code, reason: reason});
    if (this.state === 'closed') return;
    // 4001/4003/4008: the server means it; anything else: try again.
    if (code === 4003 || code === 4008 || code === 4001) {
      this._fire('error', new Error('closed by the server: ' + code + ' ' + reason));
    }
    this._setState('disconnected');
    var delay = Math.min(this.maxDelay, this.minDelay * Math.pow(2, this._attempt++));
    delay = delay * (0.75 + Math.random() * 0.5);
    var self = this;
    this._timer = setTimeout(function () { self.connect(); }, delay);
  };

  // reconnect drops the connection now; the helper connects again and
  // recovers every subscription (tests use it to force a new session).
  ShoalHub.prototype.reconnect = function () {
    if (this._sock) this._sock.close();
    else this.connect();
  };

  // close ends the connection for good.
  ShoalHub.prototype.close = function () {
    this._setState('closed');
    clearTimeout(this._timer);
    if (this._sock) this._sock.close();
  };

  ShoalHub.prototype._send = function (msg) {
    if (!this._sock || this._sock.readyState !== 1) return false;
    this._sock.send(JSON.stringify(msg));
    return true;
  };

  // _request sends a message with an id and settles with the reply that
  // carries it: resolved with its data, rejected with an Error whose .type
  // is error / auth_error / subscribe_error, or on timeout or disconnect.
  ShoalHub.prototype._request = function (type, data, timeout) {
    var self = this;
    var id = this._nextId++;
    return new Promise(function (resolve, reject) {
      if (!self._send({data_type: type, id: id, data: data})) {
        reject(new Error('not connected'));
        return;
      }
      var timer = setTimeout(function () {
        delete self._pending[id];
        reject(new Error('timeout: no reply to ' + type + ' in ' + (timeout || self.timeout) + ' ms'));
      }, timeout || self.timeout);
      self._pending[id] = {resolve: resolve, reject: reject, timer: timer};
    });
  };

  ShoalHub.prototype._receive = function (msg) {
    this._fire('raw', msg); // every message as it came, duplicates included
    if (msg.id !== undefined && this._pending[msg.id]) {
      var p = this._pending[msg.id];
      delete this._pending[msg.id];
      clearTimeout(p.timer);
      if (ERROR_TYPES[msg.data_type]) {
        var err = new Error((msg.data && msg.data.message) || msg.data_type);
        err.type = msg.data_type;
        err.data = msg.data;
        p.reject(err);
      } else {
        p.resolve(msg.data);
      }
      return;
    }
    var type = msg.data_type;
    if (type === 'request_auth') {
      if (!this.options.token) {
        var need = new Error('Token required');
        need.type = 'auth_error';
        this._fire('error', need);
        this.close();
      }
      return;
    }
    if (type === 'pong') return;
    if (ERROR_TYPES[type]) {
      var e = new Error((msg.data && msg.data.message) || type);
      e.type = type;
      e.data = msg.data;
      this._fire('error', e);
      return;
    }
    var notice = type === 'join' || type === 'leave';
    var channel = typeof msg.channel === 'string' ? msg.channel : (notice && msg.data ? msg.data.channel : null);
    var sub = channel !== null ? this.subs[channel] : null;
    if (typeof msg.offset === 'number' && channel !== null) {
      // A channel message (join / leave notices too when the channel
      // logs them): deliver each offset once, remember the last.
      var last = this._offsets[channel];
      if (last !== undefined && msg.offset <= last) return; // seen already
      this._offsets[channel] = msg.offset;
      if (sub) sub.offset = msg.offset;
    }
    if (notice) {
      if (sub) sub._fire(type, msg.data);
      this._fire(type, msg.data);
      return;
    }
    if (sub && typeof msg.offset === 'number') sub._fire('message', msg);
    this._fire('message', msg);
  };

  // subscribe joins channel and calls onMessage with every message it
  // delivers (as the server sends it: published fields plus channel and
  // offset). It returns the Subscription at once; its .ready promise
  // settles with the first reply. options.since starts from an offset.
  ShoalHub.prototype.subscribe = function (channel, onMessage, options) {
    var sub = this.subs[channel];
    if (!sub) {
      sub = this.subs[channel] = new Subscription(this, channel, options || {});
      if (sub.offset === null && this._offsets[channel] !== undefined) sub.offset = this._offsets[channel];
      if (this.state === 'connected') sub._send();
    }
    if (onMessage) sub.on('message', onMessage);
    return sub;
  };

  ShoalHub.prototype.unsubscribe = function (channel) {
    var sub = this.subs[channel];
    if (!sub) return Promise.resolve();
    delete this.subs[channel];
    delete this._offsets[channel];
    sub.state = 'unsubscribed';
    return this._request('unsubscribe', {channel: channel});
  };

  ShoalHub.prototype.publish = function (channel, data) {
    return this._request('publish', {channel: channel, data: data});
  };

  // emit sends an event to the backend; the promise resolves with the ack's
  // data (exactly one per event) or rejects on error, disconnect or timeout.
  ShoalHub.prototype.emit = function (name, data, options) {
    return this._request('event', {name: name, data: data}, options && options.timeout);
  };

  ShoalHub.prototype.presence = function (channel) {
    return this._request('presence', {channel: channel});
  };

  ShoalHub.prototype.history = function (channel, options) {
    options = options || {};
    var data = {channel: channel};
    if (options.since !== undefined) data.since = options.since;
    if (options.limit !== undefined) data.limit = options.limit;
    return this._request('history', data);
  };

  ShoalHub.prototype.ping = function () {
    return this._request('ping', {});
  };

  // Subscription is one channel. Events: message, subscribed ({offset,
  // recovered}), recovery_failed (the log no longer held everything missed:
  // reload the state), error (subscribe_error), join, leave.
  function Subscription(hub, channel, options) {
    this.hub = hub;
    this.channel = channel;
    this.offset = options.since !== undefined ? options.since : null; // last delivered
    this.state = 'pending';
    this.recovered = null;
    this._handlers = {};
    var self = this;
    this.ready = new Promise(function (resolve, reject) {
      self._resolveReady = resolve;
      self._rejectReady = reject;
    });
    this.ready.catch(function () {}); // reported through 'error' too
  }
  Subscription.prototype.on = ShoalHub.prototype.on;
  Subscription.prototype.off = ShoalHub.prototype.off;
  Subscription.prototype._fire = ShoalHub.prototype._fire;

  Subscription.prototype._send = function () {
    var self = this;
    var data = {channel: this.channel};
    if (this.offset !== null) data.since = this.offset;
    this.state = 'subscribing';
    this.hub._request('subscribe', data).then(function (reply) {
      if (self.hub.subs[self.channel] !== self) return;
      self.state = 'subscribed';
      if (self.offset === null) {
        self.offset = reply.offset;
        if (self.hub._offsets[self.channel] === undefined) self.hub._offsets[self.channel] = reply.offset;
      }
      self.recovered = data.since === undefined ? null : !!reply.recovered;
      self._fire('subscribed', reply);
      if (data.since !== undefined && !reply.recovered) self._fire('recovery_failed', reply);
      self._resolveReady(reply);
    }, function (err) {
      if (self.hub.subs[self.channel] !== self) return;
      if (err.type === 'subscribe_error' && err.message !== 'Backend unavailable') {
        self.state = 'refused';
        delete self.hub.subs[self.channel];
        self._fire('error', err);
        self._rejectReady(err);
      }
      // A disconnect: the next connect subscribes again. A timeout, an
      // error (e.g. "Rate limit exceeded") or "Backend unavailable": try
      // again in a while.
      if (self.hub.state === 'connected' && self.state === 'subscribing') {
        setTimeout(function () {
          if (self.hub.subs[self.channel] === self && self.hub.state === 'connected' && self.state === 'subscribing') self._send();
        }, 1000);
      }
    });
  };

  // _joined: the auth joined this granted channel (and recovered it when
  // it had an offset to start from); no subscribe is needed.
  Subscription.prototype._joined = function (recovered) {
    var since = this.hub._offsets[this.channel];
    this.state = 'subscribed';
    this.recovered = recovered === undefined ? null : !!recovered;
    var reply = {channel: this.channel, offset: since === undefined ? null : since, recovered: recovered, granted: true};
    this._fire('subscribed', reply);
    if (recovered === false) this._fire('recovery_failed', reply);
    this._resolveReady(reply);
  };

  Subscription.prototype.unsubscribe = function () {
    return this.hub.unsubscribe(this.channel);
  };
  Subscription.prototype.publish = function (data) {
    return this.hub.publish(this.channel, data);
  };
  Subscription.prototype.presence = function () {
    return this.hub.presence(this.channel);
  };
  Subscription.prototype.history = function (options) {
    return this.hub.history(this.channel, options);
  };

  ShoalHub.Subscription = Subscription;
  return ShoalHub;
});
