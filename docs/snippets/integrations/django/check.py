import os

import django
from django.core.management import call_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
django.setup()
call_command("check", fail_level="WARNING")  # reports every PQLSDK mistake
