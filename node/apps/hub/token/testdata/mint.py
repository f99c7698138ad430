"""Mints tokens with real Django (django.core.signing) and PyJWT for the Go
tests of package token, and checks tokens the Go side made.

Reads a JSON list of requests on stdin, writes a JSON list of results:
  {"django": payload, "secret": s, "salt": s, "compress": b, "algorithm": "sha256"|"sha1", "age": seconds}
      -> the token (age > 0 signs it that many seconds in the past)
  {"django_loads": token, "secret": s, "salt": s, "max_age": n|null}
      -> the payload, or {"error": "<exception class>"}
  {"jwt": claims, "key": secret-or-PEM, "algorithm": "HS256"|"RS256"|"ES256"}
      -> the token
Uses only Debian's python3-django and python3-jwt (+ python3-cryptography).
"""
import json
import sys
import time

from django.conf import settings

settings.configure(SECRET_KEY="unused-default")

from django.core import signing  # noqa: E402


def mint_django(req):
    real_time = time.time
    if req.get("age"):
        time.time = lambda: real_time() - req["age"]
    try:
        algorithm = req.get("algorithm", "sha256")
        if algorithm == "sha256":
            # Exactly what a Django view calls.
            return signing.dumps(req["django"], key=req["secret"], salt=req["salt"],
                                 compress=req.get("compress", False))
        signer = signing.TimestampSigner(key=req["secret"], salt=req["salt"], algorithm=algorithm)
        return signer.sign_object(req["django"], compress=req.get("compress", False))
    finally:
        time.time = real_time


def load_django(req):
    try:
        return signing.loads(req["django_loads"], key=req["secret"], salt=req["salt"],
                             max_age=req.get("max_age"))
    except signing.BadSignature as e:
        return {"error": type(e).__name__}


def mint_jwt(req):
    import jwt

    tok = jwt.encode(req["jwt"], req["key"], algorithm=req["algorithm"])
    return tok if isinstance(tok, str) else tok.decode()


def main():
    out = []
    for req in json.load(sys.stdin):
        if "django" in req:
            out.append(mint_django(req))
        elif "django_loads" in req:
            out.append(load_django(req))
        elif "jwt" in req:
            out.append(mint_jwt(req))
        else:
            raise SystemExit("unknown request %r" % req)
    json.dump(out, sys.stdout)


main()
