"""Tests of the shoal package against real Django (Debian's python3-django)
and, when the Go test that runs them gives SHOAL_TEST_URL and
SHOAL_TEST_REDIS, against a real node and Redis."""
import json
import os
import sys
import time
import unittest
from unittest import mock

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import django
from django.conf import settings

SECRET = "django-insecure-test-key-\u00e9"
settings.configure(
    SECRET_KEY=SECRET,
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "shoal"],
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
    SHOAL_WEBHOOK_SECRET="hook-secret",
    SHOAL_CHANNELS=["lobby"],
    ALLOWED_HOSTS=["*"],
)
django.setup()

from django.core import signing  # noqa: E402
from django.template import Context, Template  # noqa: E402
from django.test import RequestFactory  # noqa: E402

import shoal  # noqa: E402
from shoal import tokens, webhook  # noqa: E402
from shoal.django_helpers import shoal_webhook, token_for  # noqa: E402


class User:
    def __init__(self, pk):
        self.pk, self.is_authenticated = pk, pk is not None


class TokenTests(unittest.TestCase):
    def test_same_as_django_dumps(self):
        payloads = ["room-1", {"user": "42", "channels": ["room-1", "room-2"]},
                    {"user": "\u00e9l\u00e8ve", "channels": ["x" * 50] * 20}]
        for payload in payloads:
            for salt in ["django.core.signing", "shoal-auth"]:
                for compress in [False, True]:
                    with mock.patch("time.time", return_value=1764300000.5):
                        want = signing.dumps(payload, key=SECRET, salt=salt, compress=compress)
                        got = tokens.django_token(payload, SECRET, salt=salt, compress=compress)
                    self.assertEqual(got, want, (payload, salt, compress))
                    self.assertEqual(signing.loads(got, key=SECRET, salt=salt), payload)

    def test_django_max_age(self):
        tok = tokens.django_token("room", SECRET, now=time.time() - 600)
        with self.assertRaises(signing.SignatureExpired):
            signing.loads(tok, key=SECRET, max_age=300)

    def test_jwt(self):
        tok = tokens.jwt_token("jwt-secret", user=42, channels=["a"], now=1000, ttl=60)
        import jwt  # Debian's python3-jwt, which scripts/test installs
        claims = jwt.decode(tok, "jwt-secret", algorithms=["HS256"], options={"verify_exp": False})
        self.assertEqual(claims, {"sub": "42", "channels": ["a"], "iat": 1000, "exp": 1060})


class DjangoHelperTests(unittest.TestCase):
    def test_template_tag(self):
        out = Template('{% load shoal %}{% shoal_token "room-1" "room-2" %}').render(Context({"user": User(7)}))
        self.assertEqual(signing.loads(out, key=SECRET), {"user": "7", "channels": ["room-1", "room-2"]})
        out = Template("{% load shoal %}{% shoal_token %}").render(Context({"user": User(None)}))
        self.assertEqual(signing.loads(out, key=SECRET), {"channels": ["lobby"]})

    def test_context_processor(self):
        from shoal.context_processors import shoal as processor
        req = RequestFactory().get("/")
        req.user = User(3)
        ctx = processor(req)
        self.assertEqual(ctx["shoal_url"], "/hub")
        self.assertEqual(signing.loads(ctx["shoal_token"], key=SECRET), {"user": "3", "channels": ["lobby"]})
        self.assertEqual(signing.loads(token_for(User(3), ["a"]), key=SECRET), {"user": "3", "channels": ["a"]})

    def test_webhook_view(self):
        @shoal_webhook
        def hook(request, req):
            if req["type"] == "subscribe" and req["channel"].startswith("private"):
                return {"deny": "Private"}
            return {}

        def post(body, secret="hook-secret", ts=None):
            ts = str(int(time.time()) if ts is None else ts)
            return hook(RequestFactory().post(
                "/hook", data=body, content_type="application/json",
                HTTP_X_SHOAL_TIMESTAMP=ts, HTTP_X_SHOAL_SIGNATURE=webhook.sign(secret, ts, body)))

        ok = post(b'{"type":"subscribe","session":"s","channel":"room"}')
        self.assertEqual((ok.status_code, json.loads(ok.content)), (200, {}))
        no = post(b'{"type":"subscribe","session":"s","channel":"private-1"}')
        self.assertEqual(json.loads(no.content), {"deny": "Private"})
        self.assertEqual(post(b'{"type":"event"}', secret="wrong").status_code, 401)
        self.assertEqual(post(b'{"type":"event"}', ts=int(time.time()) - 3600).status_code, 401)


@unittest.skipUnless(os.environ.get("SHOAL_TEST_URL"), "run by clients/python/python_test.go with a node")
class NodeTests(unittest.TestCase):
    """Publish what python_test.go's session waits for: by the HTTP API,
    Redis PUBLISH and the stream, in that order."""

    def test_publish_paths(self):
        api = shoal.HTTPClient(os.environ["SHOAL_TEST_URL"], os.environ["SHOAL_TEST_API_KEY"])
        off = api.publish("py-room", {"src": "http", "n": 0})
        self.assertGreater(off, 0)
        res = api.broadcast(["py-room", "py-other"], {"src": "http", "n": 1})
        self.assertEqual([r["channel"] for r in res], ["py-room", "py-other"])
        with self.assertRaises(shoal.ShoalError) as e:
            api.publish("", {"x": 1})
        self.assertEqual(e.exception.status, 400)
        with self.assertRaises(shoal.ShoalError) as e:
            shoal.HTTPClient(os.environ["SHOAL_TEST_URL"], "wrong").publish("py-room", 1)
        self.assertEqual(e.exception.status, 401)
        hist = api.history("py-room")
        self.assertEqual(len(hist["messages"]), 2)
        self.assertIn("members", api.info()["cluster"])
        with shoal.RedisPublisher(os.environ["SHOAL_TEST_REDIS"]) as r:
            self.assertEqual(r.command("SET", "shoal-py-test", b"\x00bin\r\n"), "OK")
            self.assertEqual(r.command("GET", "shoal-py-test"), b"\x00bin\r\n")
            with self.assertRaises(shoal.ShoalError):
                r.command("NOSUCHCOMMAND")
            # Wait for the bridge: PUBLISH answers how many subscribed.
            deadline = time.time() + 20
            while r.command("PUBSUB", "NUMPAT") < 1 and time.time() < deadline:
                time.sleep(0.05)
            self.assertEqual(r.publish("py-room", {"src": "redis", "n": 2}), 1)
            r.publish("py-room", b"not json")
            self.assertRegex(r.publish_durable("py-room", {"src": "stream", "n": 3}), r"^\d+-\d+$")


if __name__ == "__main__":
    unittest.main()
