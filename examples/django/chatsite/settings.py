"""Settings of the Shoal chat example. Everything Shoal needs comes from
the environment, with the values scripts/cluster's example setup uses
(examples/django/README.md)."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-insecure-secret-change-me")
DEBUG = True
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "shoal",
    "chat",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "chatsite.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
        "shoal.context_processors.shoal",
        "chat.context.hub",
    ]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.environ.get("CHAT_DB", str(BASE_DIR / "db.sqlite3"))}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
USE_TZ = True

# Shoal. The nodes run with --django-secret-key = SHOAL_SECRET_KEY (here
# the site's own SECRET_KEY) and --api-key = SHOAL_API_KEY.
SHOAL_HUB = os.environ.get("SHOAL_HUB", "http://127.0.0.1:8080")   # the balancer
SHOAL_URL = SHOAL_HUB + "/hub"
SHOAL_API_KEY = os.environ.get("SHOAL_API_KEY", "example-api-key")
SHOAL_REDIS = os.environ.get("SHOAL_REDIS", "redis://127.0.0.1:6380/0")
SHOAL_CHANNELS = ["dashboard"]
