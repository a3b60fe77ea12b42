"""``manage.py demo [addrport]``: seed, then runserver; one command for the whole demo."""

import os
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandParser
from django.core.management.commands.runserver import Command as RunServer


class Command(RunServer):
    help = "Migrate, seed the demo customers and run the development server."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--fresh", action="store_true", help="delete both databases first")

    def handle(self, *args: Any, **options: Any) -> None:
        # With the autoreloader, runserver runs this again in a child process
        # (RUN_MAIN=true); seed once, in the parent.
        if os.environ.get("RUN_MAIN") != "true":
            call_command("seed", fresh=options["fresh"])
        super().handle(*args, **options)
