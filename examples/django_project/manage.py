#!/usr/bin/env python
"""Acme Reports, a demo SaaS on Django with pqlsdk: `python manage.py demo` runs it."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "acme.settings")
    from django.core.management import execute_from_command_line  # noqa: PLC0415

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
