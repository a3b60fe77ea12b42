"""A client's options: their defaults and the checks that refuse a setup mistake.

``Client(...)`` takes its options as keywords and hands them to ``Options.read``,
which raises ``ConfigError`` at once for a value that cannot work (setup
mistakes are loud), opens a store given as a URL and chooses the transport.
Everything that reads options from elsewhere (a framework's settings) can call
the same ``Options.read``, so each option is checked in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Final, Literal

import msgspec

from ._clock import Clock, SystemClock
from ._delivery import make_transport
from ._delivery._batcher import Delivery
from ._exceptions import ConfigError, DeliveryError
from ._tiers import TierChange
from .rules import Rules
from .stores import Store, open_store
from .transports import AsyncTransport, Transport

__all__ = ["DEFAULT_RETENTION", "DEFAULT_STORE", "Options"]

DEFAULT_STORE: Final = "sqlite:///pqlsdk.db"
"""The store a client opens when given none: a SQLite file in the working directory.

Added in version 0.1.0.
"""

DEFAULT_RETENTION: Final = timedelta(days=400)
"""How long the raw message log keeps messages unless told otherwise."""


class Options(msgspec.Struct, frozen=True, kw_only=True):
    """A client's options, checked: the store opened, the transport chosen."""

    store: Store
    clock: Clock
    strict: bool
    retention: timedelta | None
    rules: str | Path | Rules | None
    on_tier_change: Callable[[TierChange], None] | None
    transport: Transport | AsyncTransport | None  # None: nothing leaves the process
    owns_transport: bool  # made from endpoint= (closed with the client), not given
    delivery: Delivery
    on_error: Callable[[DeliveryError], None] | None
    gate_fallback: Literal["allow", "deny"]

    @classmethod
    def read(
        cls,
        *,
        store: str | Store = DEFAULT_STORE,
        clock: Clock | None = None,
        strict: bool = False,
        retention: timedelta | None = DEFAULT_RETENTION,
        rules: str | Path | Rules | None = None,
        on_tier_change: Callable[[TierChange], None] | None = None,
        endpoint: str | None = None,
        write_key: str | None = None,
        transport: Transport | AsyncTransport | None = None,
        delivery: Delivery | None = None,
        on_error: Callable[[DeliveryError], None] | None = None,
        gate_fallback: Literal["allow", "deny"] = "allow",
    ) -> Options:
        """Check the options ``Client`` takes (same keywords, same defaults).

        Raises ``ConfigError`` for the first that cannot work. The rules are
        checked when they are loaded (``Client.load_rules``).
        """
        if gate_fallback not in ("allow", "deny"):
            raise ConfigError(f'gate_fallback must be "allow" or "deny", got {gate_fallback!r}')
        if retention is not None and retention <= timedelta(0):
            raise ConfigError(f"retention must be positive or None, got {retention!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigError(f"clock must have a now() method, got {type(clock).__name__}")
        if delivery is not None and not isinstance(delivery, Delivery):
            raise ConfigError(f"delivery must be a Delivery, got {type(delivery).__name__}")
        sender, owns_sender = make_transport(endpoint, write_key, transport)
        if isinstance(store, str):
            opened = open_store(store)
        elif isinstance(store, Store):
            opened = store
        else:
            raise ConfigError(f"store must be a URL or a Store, got {type(store).__name__}")
        return cls(
            store=opened,
            clock=clock or SystemClock(),
            strict=strict,
            retention=retention,
            rules=rules,
            on_tier_change=on_tier_change,
            transport=sender,
            owns_transport=owns_sender,
            delivery=delivery or Delivery(),
            on_error=on_error,
            gate_fallback=gate_fallback,
        )
