"""Shoal's backend helpers for Python and Django, standard library only.

- tokens: mint hub auth tokens (Django signing, JWT HS256)
- client: publish and manage the hub over the HTTP API, or over Redis
- webhook: verify the hub's signed webhook requests
- Django: add "shoal" to INSTALLED_APPS for {% load shoal %}{% shoal_token %}
  and the context processor shoal.context_processors.shoal
"""
from .tokens import django_token, jwt_token
from .client import HTTPClient, RedisPublisher, ShoalError
from .webhook import verify_signature, WebhookError

__all__ = [
    "django_token", "jwt_token", "HTTPClient", "RedisPublisher", "ShoalError",
    "verify_signature", "WebhookError",
]
