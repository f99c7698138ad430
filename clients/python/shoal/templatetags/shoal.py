"""{% load shoal %}{% shoal_token %} or {% shoal_token "room-1" "room-2" %}:
a hub token for the request's user (needs the request or user in the
template context)."""
from django import template

from ..django_helpers import token_for

register = template.Library()


@register.simple_tag(takes_context=True)
def shoal_token(context, *channels):
    user = context.get("user")
    request = context.get("request")
    if request is not None and hasattr(request, "user"):
        user = request.user
    return token_for(user, channels or None)
