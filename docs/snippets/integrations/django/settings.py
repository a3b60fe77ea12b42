from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "change-me"
ROOT_URLCONF = "urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "pqlsdk.integrations.django",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "pqlsdk.integrations.django.PQLSDKMiddleware",  # after AuthenticationMiddleware
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]

PQLSDK = {
    "RULES": BASE_DIR / "playbook.toml",  # required
    "STORE": "sqlite:///" + str(BASE_DIR / "pqlsdk.db"),  # this is the default
    "UPGRADE_URL": "/billing/",  # a path, URL or URL name
    # "ENDPOINT": "https://collector.example.com", "WRITE_KEY": "wk_live_...",
    # "USER": "myapp.pqlsdk.user_id",  # default: the signed-in user's primary key
}
