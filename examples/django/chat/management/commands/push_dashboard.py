"""Push the dashboard: every --interval seconds, publish the site's
numbers on channel "dashboard" by Redis PUBLISH (the seed blog's way),
through the hub's Redis bridge."""
import time

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

from shoal import RedisPublisher


class Command(BaseCommand):
    help = "Publish dashboard numbers to the hub"

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=0, help="how many updates (0: forever)")
        parser.add_argument("--interval", type=float, default=1.0)

    def handle(self, count, interval, **options):
        n = 0
        with RedisPublisher(settings.SHOAL_REDIS) as redis:
            while count == 0 or n < count:
                n += 1
                stats = {"data_type": "stats", "tick": n, "users": User.objects.count(), "time": time.time()}
                receivers = redis.publish("dashboard", stats)
                self.stdout.write("tick %d (bridged by %d node)" % (n, receivers))
                if count == 0 or n < count:
                    time.sleep(interval)
