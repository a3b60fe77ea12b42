"""``manage.py seed``: Django's tables, and the demo customers in Django and pqlsdk."""

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from acme.demo import seed
from pqlsdk.integrations.django import client, close


class Command(BaseCommand):
    help = "Migrate and create the demo customers (idempotent; --fresh starts over)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fresh", action="store_true", help="delete both demo databases first")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["fresh"]:
            for pattern in ("django.sqlite3*", "pqlsdk.db*"):
                for path in settings.DATA_DIR.glob(pattern):
                    path.unlink()
        call_command("migrate", verbosity=0)
        created = seed(client())
        close()  # commit and let the server (another process, maybe) open the store
        self.stdout.write(f"Acme Reports is seeded ({len(created)} new customers).")
