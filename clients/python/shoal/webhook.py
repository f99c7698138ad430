"""Verifying the hub's webhook requests (--webhook-url, --webhook-secret).

Each request carries X-Shoal-Timestamp (Unix seconds) and
X-Shoal-Signature ("sha256=" + hex HMAC-SHA256 of timestamp + "." + body,
keyed by the shared secret). See docs/backends.md for the bodies and
replies; shoal.django_views has a Django view decorator.
"""
import hashlib
import hmac
import time


class WebhookError(Exception):
    """The request is not from the hub, or too old."""


def sign(secret, timestamp, body):
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret, timestamp, signature, body, max_age=300, now=None):
    """Raise WebhookError unless signature signs timestamp + body and the
    timestamp is within max_age seconds of now."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        raise WebhookError("bad timestamp") from None
    now = time.time() if now is None else now
    if abs(now - ts) > max_age:
        raise WebhookError("request too old")
    if not hmac.compare_digest(sign(secret, ts, body), signature or ""):
        raise WebhookError("bad signature")
