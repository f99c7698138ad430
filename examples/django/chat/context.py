from django.conf import settings


def hub(request):
    """shoal_hub: the balancer's base URL, where the pages load the hub's
    scripts from."""
    return {"shoal_hub": settings.SHOAL_HUB}
