"""Importing pqlsdk has no effects, and its public surface is exactly ``__all__``."""

from __future__ import annotations

import subprocess
import sys

import pqlsdk


def test_import_starts_no_thread_and_does_not_import_httpx() -> None:
    """A bare import must not start threads, open sockets or pull in httpx."""
    code = (
        "import sys, threading\n"
        "before = threading.active_count()\n"
        "import pqlsdk, pqlsdk.stores, pqlsdk.messages, pqlsdk.cli\n"
        "assert threading.active_count() == before, threading.enumerate()\n"
        "print(sorted({'httpx', 'httpcore', 'flask', 'django', 'redis'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_all_lists_exactly_the_public_names() -> None:
    """Every public name is in ``__all__``, and ``__all__`` holds nothing private."""
    public = {name for name in vars(pqlsdk) if not name.startswith("_")} - {
        "annotations",
        "cli",
        "collector",
        "integrations",
        "messages",
        "replay",
        "rules",
        "stores",
        "testing",
        "transports",
    }
    assert sorted(pqlsdk.__all__) == sorted(public | {"__version__"})


def test_errors_subclass_the_matching_builtins() -> None:
    """Generic handlers keep working: config and message errors are ValueErrors."""
    assert issubclass(pqlsdk.ConfigError, ValueError)
    assert issubclass(pqlsdk.InvalidMessageError, ValueError)
    assert issubclass(pqlsdk.NotJSONError, TypeError)
    assert issubclass(pqlsdk.StoreError, OSError)
    assert issubclass(pqlsdk.ClosedError, RuntimeError)
    for name in pqlsdk.__all__:
        obj = getattr(pqlsdk, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, pqlsdk.PQLError), name
