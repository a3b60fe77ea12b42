"""Settings for Acme Reports: SQLite for Django, the embedded pqlsdk store beside it.

Environment: ``ACME_DATA_DIR`` (where both databases live; ``var/`` here by
default), ``ACME_SECRET_KEY``, ``ACME_DEBUG`` ("0" to turn debug pages off).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("ACME_DATA_DIR", BASE_DIR / "var"))
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("ACME_SECRET_KEY", "demo-only-not-a-secret")
DEBUG = os.environ.get("ACME_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "acme",  # before pqlsdk: its pqlsdk/blocked.html wins over the default
    "pqlsdk.integrations.django",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "pqlsdk.integrations.django.PQLSDKMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "acme.urls"
WSGI_APPLICATION = "acme.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "acme.views.plan",
            ],
        },
    },
]

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "django.sqlite3"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "reports"
USE_TZ = True
TIME_ZONE = "UTC"

# pqlsdk: the playbook the growth team edits, and the embedded SQLite store.
PQLSDK = {
    "RULES": BASE_DIR.parent / "rules" / "playbook.toml",
    "STORE": f"sqlite:///{DATA_DIR / 'pqlsdk.db'}",
    "UPGRADE_URL": "billing",
}
