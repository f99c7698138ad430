"""A backend for the webhook tests: a standard-library HTTP server that
checks each request's signature and answers as docs/backends.md says.

usage: backend.py PORT SECRET
"""
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, SECRET = int(sys.argv[1]), sys.argv[2].encode()
lock = threading.Lock()
disconnects = []  # sessions whose disconnect was accepted
attempts = {}  # session -> disconnect attempts


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            self.reply(200, {"disconnects": disconnects, "attempts": attempts})

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ts = self.headers.get("X-Shoal-Timestamp", "")
        want = "sha256=" + hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, self.headers.get("X-Shoal-Signature", "")) \
                or abs(time.time() - int(ts or 0)) > 300:
            return self.reply(401, {"deny": "bad signature"})
        req = json.loads(body)
        kind = req["type"]
        if kind == "connect":
            if req.get("token") == "slow":
                time.sleep(3)
            if req.get("token") == "good" or req.get("headers", {}).get("Cookie") == "sessionid=ok":
                return self.reply(200, {"user": "42", "channels": ["room-1"]})
            return self.reply(200, {"deny": "Token refused"})
        if kind == "subscribe":
            if req["channel"].startswith("private"):
                return self.reply(403, {"deny": "Private channel"})
            return self.reply(200, {})
        if kind == "publish":
            data = req["data"]
            if "bad" in json.dumps(data):
                return self.reply(200, {"deny": "Watch your language"})
            if isinstance(data, dict):
                return self.reply(200, {"data": dict(data, checked=True)})
            return self.reply(200, {})
        if kind == "event":
            if req["name"] == "crash":
                return self.reply(500, {})
            return self.reply(200, {"data": {"echo": req["data"], "user": req.get("user", "")}})
        if kind == "disconnect":
            with lock:
                n = attempts[req["session"]] = attempts.get(req["session"], 0) + 1
                if n < 3:  # the first two attempts fail: the node retries
                    return self.reply(503, {})
                disconnects.append(req["session"])
            return self.reply(200, {})
        self.reply(400, {"deny": "unknown type"})


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
