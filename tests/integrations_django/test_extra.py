"""Without Django, importing any part of the integration names the extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["pqlsdk.integrations.django", "pqlsdk.integrations.django.middleware"],
)
def test_a_missing_django_names_the_extra(module: str) -> None:
    code = (
        "import sys\n"
        "sys.modules['django'] = None  # as if Django were not installed\n"
        "try:\n"
        f"    import {module}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'pqlsdk[django]'" in found.stdout
