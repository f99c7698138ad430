"""Chat rooms and a dashboard. The browser gets a hub token for the
logged-in user (the shoal template tag), connects to the hub through the
balancer, and joins its room; Django announces arrivals through the hub's
HTTP API; a management command pushes the dashboard."""
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from shoal import HTTPClient, ShoalError

ROOMS = ["lobby", "python", "go"]


def api():
    return HTTPClient(settings.SHOAL_HUB, settings.SHOAL_API_KEY, timeout=3)


@login_required
def index(request):
    return render(request, "chat/index.html", {"rooms": ROOMS})


@login_required
def room(request, name):
    channel = "room-" + name
    try:
        # Everyone in the room sees who arrives; a hub that is down only
        # costs the notice.
        api().publish(channel, {"data_type": "notice", "text": request.user.username + " is here"})
    except (OSError, ShoalError):
        pass
    return render(request, "chat/room.html", {"room": name, "channel": channel})


@login_required
def dashboard(request):
    return render(request, "chat/dashboard.html")
