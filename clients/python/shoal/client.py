"""Publishing to the hub and managing it.

HTTPClient talks to the HTTP API (--api-key); RedisPublisher speaks RESP
over a socket to the Redis the nodes bridge (--bridge-redis), so a backend
needs neither redis-py nor an HTTP library.
"""
import json
import socket
import urllib.error
import urllib.parse
import urllib.request


class ShoalError(Exception):
    """A call failed; status is the HTTP status (None for Redis)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class HTTPClient:
    """The hub's HTTP API. url is a node's or the balancer's base URL."""

    def __init__(self, url, api_key, timeout=10):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def _call(self, path, body=None, query=None):
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
        req.add_header("Authorization", "apikey " + self.api_key)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            try:
                msg = json.load(e).get("error", e.reason)
            except ValueError:
                msg = e.reason
            raise ShoalError(msg, e.code) from None

    def publish(self, channel, data):
        """Publish a JSON value; returns its offset in the channel."""
        return self._call("/api/publish", {"channel": channel, "data": data})["offset"]

    def broadcast(self, channels, data):
        """Publish to many channels; returns [{"channel", "offset" or "error"}]."""
        return self._call("/api/broadcast", {"channels": list(channels), "data": data})["results"]

    def disconnect_user(self, user):
        return self._call("/api/disconnect", {"user": str(user)})["disconnected"]

    def disconnect_session(self, session):
        return self._call("/api/disconnect", {"session": session})["disconnected"]

    def presence(self, channel):
        return self._call("/api/presence", query={"channel": channel})

    def history(self, channel, since=0, limit=0):
        return self._call("/api/history", query={"channel": channel, "since": since, "limit": limit})

    def channels(self):
        return self._call("/api/channels")["channels"]

    def user_sessions(self, user):
        return self._call("/api/sessions", query={"user": str(user)})["sessions"]

    def info(self):
        return self._call("/api/info")


def _resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _payload(data):
    """bytes go as they are (not JSON: they arrive as a string); anything
    else as its JSON."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    return json.dumps(data, separators=(",", ":")).encode()


class RedisPublisher:
    """PUBLISH <prefix><channel> over RESP, and XADD to the durable
    bridge's stream. url: redis://[:password@]host:port/db."""

    def __init__(self, url="redis://127.0.0.1:6379/0", prefix="shoal:", stream="shoal:stream", timeout=5):
        u = urllib.parse.urlparse(url)
        if u.scheme != "redis":
            raise ValueError("only redis:// URLs are supported")
        self.addr = (u.hostname or "127.0.0.1", u.port or 6379)
        self.username = urllib.parse.unquote(u.username) if u.username else None
        self.password = urllib.parse.unquote(u.password) if u.password else None
        self.db = int(u.path.lstrip("/") or 0)
        self.prefix, self.stream, self.timeout = prefix, stream, timeout
        self._sock = None
        self._buf = b""

    def _connect(self):
        self._sock = socket.create_connection(self.addr, timeout=self.timeout)
        self._buf = b""
        if self.password is not None:
            if self.username:
                self._command("AUTH", self.username, self.password)
            else:
                self._command("AUTH", self.password)
        if self.db:
            self._command("SELECT", self.db)

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _line(self):
        while b"\r\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ShoalError("redis closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise ShoalError("redis: " + rest.decode(errors="replace"))
        if kind in (b"+", b":"):
            return int(rest) if kind == b":" else rest.decode()
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self._buf) < n + 2:
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise ShoalError("redis closed the connection")
                self._buf += chunk
            data, self._buf = self._buf[:n], self._buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ShoalError("redis: unexpected reply %r" % line)

    def _command(self, *args):
        self._sock.sendall(_resp_command(*args))
        return self._read()

    def command(self, *args):
        """Run one Redis command; reconnects once after a broken connection."""
        for attempt in (1, 2):
            try:
                if self._sock is None:
                    self._connect()
                return self._command(*args)
            except (OSError, ShoalError) as e:
                self.close()
                if attempt == 2 or isinstance(e, ShoalError) and str(e).startswith("redis: "):
                    raise
        return None

    def publish(self, channel, data):
        """PUBLISH: at most once (docs/backends.md); returns how many Redis
        subscribers got it (1 while a node bridges)."""
        return self.command("PUBLISH", self.prefix + channel, _payload(data))

    def publish_durable(self, channel, data):
        """XADD to the stream the durable bridge reads: at least once, no
        duplicates; returns the entry id."""
        entry = self.command("XADD", self.stream, "*", "channel", channel, "data", _payload(data))
        return entry.decode() if isinstance(entry, bytes) else entry
