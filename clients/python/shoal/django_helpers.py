"""Django glue: tokens for the logged-in user, and a webhook view decorator.

Settings (all optional):
  SHOAL_URL          hub endpoint the browser connects to (default "/hub")
  SHOAL_SECRET_KEY   key the hub's --django-secret-key has (default SECRET_KEY)
  SHOAL_SALT         the hub's --django-salt (default "django.core.signing")
  SHOAL_JWT_SECRET   mint HS256 JWTs (--jwt-secret) instead of Django tokens
  SHOAL_CHANNELS     channels every token grants (list), or a dotted path
                     to a function(user) -> list
  SHOAL_WEBHOOK_SECRET  the hub's --webhook-secret
"""
import functools
import importlib
import json

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .tokens import DEFAULT_SALT, django_token, jwt_token, payload_for
from .webhook import WebhookError, verify_signature


def _channels_for(user):
    chans = getattr(settings, "SHOAL_CHANNELS", [])
    if isinstance(chans, str):
        mod, _, fn = chans.rpartition(".")
        chans = getattr(importlib.import_module(mod), fn)(user)
    return list(chans)


def token_for(user, channels=None):
    """A hub token for user (anonymous: no user) granting channels (default
    SHOAL_CHANNELS)."""
    uid = str(user.pk) if user is not None and user.is_authenticated else None
    chans = _channels_for(user) if channels is None else list(channels)
    jwt_secret = getattr(settings, "SHOAL_JWT_SECRET", None)
    if jwt_secret:
        return jwt_token(jwt_secret, user=uid, channels=chans)
    key = getattr(settings, "SHOAL_SECRET_KEY", None) or settings.SECRET_KEY
    salt = getattr(settings, "SHOAL_SALT", DEFAULT_SALT)
    return django_token(payload_for(uid, chans), key, salt=salt)


def shoal_webhook(view):
    """Decorate view(request, req) -> dict: the request's signature is
    checked with SHOAL_WEBHOOK_SECRET (401 when it fails), its JSON body
    is decoded into req (req["type"] is connect, subscribe, publish,
    event or disconnect) and the dict returned becomes the JSON reply
    ({"deny": "reason"} refuses)."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapped(request):
        if request.method != "POST":
            return JsonResponse({"deny": "POST only"}, status=405)
        try:
            verify_signature(settings.SHOAL_WEBHOOK_SECRET,
                             request.headers.get("X-Shoal-Timestamp"),
                             request.headers.get("X-Shoal-Signature"),
                             request.body)
            req = json.loads(request.body)
        except (WebhookError, ValueError) as e:
            return JsonResponse({"deny": str(e)}, status=401)
        return JsonResponse(view(request, req) or {})

    return wrapped
