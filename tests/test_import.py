"""Importing pqlsdk has no effects, and its public surface is exactly ``__all__``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pqlsdk


def _printed(code: str, *args: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet); return what it printed."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_import_starts_no_thread_and_does_not_import_httpx() -> None:
    """A bare import must not start threads, open sockets or pull in httpx."""
    code = (
        "import sys, threading\n"
        "before = threading.active_count()\n"
        "import pqlsdk, pqlsdk.stores, pqlsdk.messages, pqlsdk.cli\n"
        "assert threading.active_count() == before, threading.enumerate()\n"
        "print(sorted({'httpx', 'httpcore', 'flask', 'django', 'redis'} & set(sys.modules)))\n"
    )
    assert _printed(code) == "[]"


def test_import_leaves_attrs_out() -> None:
    """``import pqlsdk`` loads no attrs: importing it and building its classes took ~30 ms.

    The classes on the import path are msgspec Structs; attrs serves only the
    parts loaded on use (the rules parser, collector, replay, integrations).
    """
    code = "import sys, pqlsdk\nprint(sorted({'attr', 'attrs'} & set(sys.modules)))\n"
    assert _printed(code) == "[]"


def test_all_lists_exactly_the_public_names() -> None:
    """Every public name is in ``__all__``, and ``__all__`` holds nothing private."""
    public = {name for name in vars(pqlsdk) if not name.startswith("_")} - {
        "annotations",
        "cli",
        "collector",
        "integrations",
        "lift",
        "messages",
        "replay",
        "rules",
        "stores",
        "testing",
        "transports",
        "warehouse",
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


def test_clients_on_local_stores_load_nothing_only_redis_needs(tmp_path: Path) -> None:
    """The outage logic and the Redis outbox load only with a Redis store."""
    code = (
        "import sys\n"
        "from pqlsdk import Client, Delivery\n"
        "from pqlsdk.testing import RecordingTransport\n"
        "for store in ('memory://', 'sqlite:///' + sys.argv[1]):\n"
        "    client = Client(store=store, transport=RecordingTransport(),\n"
        "                    delivery=Delivery(mode='caller'))\n"
        "    client.track('u1', 'e')\n"
        "    client.stats()\n"
        "    client.close()\n"
        "redis_only = {'pqlsdk.stores._outage', 'pqlsdk.stores.redis',\n"
        "              'pqlsdk.stores.redis._outbox'}\n"
        "print(sorted(redis_only & set(sys.modules)))\n"
    )
    assert _printed(code, str(tmp_path / "pqlsdk.db")) == "[]"
