"""Add "shoal.context_processors.shoal" to TEMPLATES' context_processors:
every template then has shoal_url and shoal_token (for request.user)."""
from django.conf import settings

from .django_helpers import token_for


def shoal(request):
    return {
        "shoal_url": getattr(settings, "SHOAL_URL", "/hub"),
        "shoal_token": token_for(getattr(request, "user", None)),
    }
