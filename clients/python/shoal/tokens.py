"""Hub auth tokens.

django_token makes exactly what django.core.signing.dumps makes (a
TimestampSigner over URL-safe base64 JSON, HMAC-SHA256 with a key derived
from the salt), so a site without Django, or a worker that does not load
its settings, mints tokens the hub's --django-secret-key accepts.
jwt_token makes an HS256 JWT for --jwt-secret.
"""
import base64
import hashlib
import hmac
import json
import time
import zlib

DEFAULT_SALT = "django.core.signing"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b62(n):
    if n == 0:
        return "0"
    sign = "-" if n < 0 else ""
    n = abs(n)
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _B62[r] + out
    return sign + out


def _salted_hmac(key_salt, value, secret):
    key = hashlib.sha256((key_salt + secret).encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).digest()


def payload_for(user=None, channels=None):
    """The token payload the hub reads: {"user": ..., "channels": [...]}."""
    p = {}
    if user is not None:
        p["user"] = str(user)
    if channels is not None:
        p["channels"] = list(channels)
    return p


def django_token(payload, secret, salt=DEFAULT_SALT, compress=False, now=None):
    """Sign payload as django.core.signing.dumps(payload, key=secret,
    salt=salt, compress=compress) does. payload is a channel name (str) or
    {"user": "<id>", "channels": [...]} (see payload_for)."""
    data = json.dumps(payload, separators=(",", ":")).encode("latin-1")
    compressed = False
    if compress:
        z = zlib.compress(data)
        if len(z) < len(data) - 1:
            data, compressed = z, True
    value = ("." if compressed else "") + _b64(data)
    ts = int(time.time() if now is None else now)
    value = "%s:%s" % (value, _b62(ts))
    return "%s:%s" % (value, _b64(_salted_hmac(salt + "signer", value, secret)))


def jwt_token(secret, user=None, channels=None, ttl=300, now=None, **claims):
    """An HS256 JWT with sub = user, claim channels, iat and exp (ttl
    seconds; None: no exp)."""
    now = int(time.time() if now is None else now)
    body = dict(claims)
    body["iat"] = now
    if ttl is not None:
        body["exp"] = now + int(ttl)
    if user is not None:
        body["sub"] = str(user)
    if channels is not None:
        body["channels"] = list(channels)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signing_input = header + "." + payload
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(sig)
