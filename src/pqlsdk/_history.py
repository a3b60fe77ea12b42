"""Histories: a file of messages folded into state in one streaming pass.

``pqlsdk score`` (and replays) read a history of Segment messages (JSON Lines,
a scenario-shaped JSON object with ``"events"``, a JSON array, or gzip of any
of these), fold every message into per-user and per-account state with the
same ``apply()`` the stores use, then score with the same ``score_subject()``
as the client. Only the storage differs: plain dictionaries, no message log,
no locks, so a million events take a second or two.

Memory grows with users and accounts, and by 8 bytes an event: lines are
decoded one at a time and dropped, and de-duplication by ``messageId`` keeps
the first message of each id across the whole history, as the SQL backend
does, remembering each id as a 64-bit hash (``pqlsdk._digests``).
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import msgspec

from ._aggregates import Aggregate
from ._digests import Digests, digest
from ._exceptions import ConfigError, InvalidMessageError
from .messages import MAX_MESSAGE_BYTES, Group, Message, check_decoded, convert
from .stores._state import AccountState, UserState, apply

__all__ = ["SHOWN_INVALID", "History", "document_items", "fold", "read"]


SHOWN_INVALID: Final = 10
"""How many refused messages a history describes by place (the rest are counted)."""

_decode_message: Final = msgspec.json.Decoder(Message).decode


class _Users(dict[str, UserState]):
    """Users by id; a new id gets a fresh state (so ``apply()`` never returns new ones)."""

    def __missing__(self, user_id: str) -> UserState:
        state = self[user_id] = UserState(user_id=user_id)
        return state


class _Accounts(dict[str, AccountState]):
    """Accounts by id; a new id gets a fresh state."""

    def __missing__(self, account_id: str) -> AccountState:
        state = self[account_id] = AccountState(account_id=account_id)
        return state


class History:
    """The state a history left behind, and what was skipped on the way."""

    def __init__(self) -> None:
        self.users: dict[str, UserState] = _Users()
        self.accounts: dict[str, AccountState] = _Accounts()
        self.groups: set[str] = set()
        """Accounts named by a group message (scored as accounts)."""
        self.skipped: Counter[str] = Counter()
        """Refused messages by reason (``invalid``, ``missing_identity``...)."""
        self.invalid: list[str] = []
        """The first ``SHOWN_INVALID`` refused messages, as ``file:line: why``.

        In a JSON document, where lines say little, a message is placed by its
        position instead: ``file: message 3: why``.
        """
        self.duplicates = 0
        self.now: str | None = None
        """The history file's own evaluation time (scenario files carry one)."""

    def refuse(self, reason: str, where: str, why: object) -> None:
        """Count a refused message by ``reason``; describe it if it is among the first few."""
        self.skipped[reason] += 1
        if len(self.invalid) < SHOWN_INVALID:
            self.invalid.append(f"{where}: {why}")


def read(path: Path, history: History) -> Iterator[Message]:
    """Yield the checked messages of the file at ``path``, streaming JSON Lines.

    Refused messages are counted in ``history.skipped`` by reason; a file that
    cannot be read (or unzipped), or a line that is not JSON, raises
    ``ConfigError`` naming it.
    """
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read events {str(path)!r}: {exc.strerror}") from exc
    with raw:
        try:
            stream: io.BufferedReader | gzip.GzipFile = raw
            if raw.peek(2)[:2] == b"\x1f\x8b":  # gzip's magic number
                stream = gzip.GzipFile(fileobj=raw)
            blank = 0
            first = stream.readline()
            while first and not first.strip():  # blank lines before the first message
                blank += 1
                first = stream.readline()
            if not first:
                return  # an empty file: no messages
            if _is_message(first):
                lines = itertools.chain((first,), stream)
                yield from _lines(path, lines, history, start=blank + 1)
            else:
                yield from _document(path, first + stream.read(), history)
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
            raise ConfigError(f"cannot read events {str(path)!r}: {exc}") from exc


def _is_message(line: bytes) -> bool:
    """Whether ``line`` is one whole JSON object other than a scenario's: JSON Lines."""
    try:
        found = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return False
    return isinstance(found, dict) and not isinstance(found.get("events"), list)


def _lines(
    path: Path, lines: Iterable[bytes], history: History, *, start: int = 1
) -> Iterator[Message]:
    for number, line in enumerate(lines, start):
        try:
            message = _decode_message(line)
        except msgspec.ValidationError as exc:  # JSON, but not a message
            history.refuse("invalid", f"{path}:{number}", f"not a valid message: {exc}")
            continue
        except msgspec.DecodeError as exc:
            if not line.strip():
                continue
            raise ConfigError(f"{path}:{number}: not JSON: {exc}") from exc
        size = len(line)
        if size > MAX_MESSAGE_BYTES:  # rare: only then does the line ending matter
            size -= line.endswith(b"\n") + line.endswith(b"\r\n")
        try:
            yield check_decoded(message, size)
        except InvalidMessageError as exc:
            history.refuse(exc.reason, f"{path}:{number}", exc)


def _document(path: Path, data: bytes, history: History) -> Iterator[Message]:
    """Yield the messages of a scenario-shaped object (``{"now", "events"}``) or array."""
    history.now, items = document_items(path, data)
    for number, item in enumerate(items, 1):
        try:
            yield convert(item)
        except InvalidMessageError as exc:
            history.refuse(exc.reason, f"{path}: message {number}", exc)


def document_items(path: Path, data: bytes) -> tuple[str | None, list[Any]]:
    """Return the ``now`` and the items of a scenario-shaped object, or an array's items."""
    try:
        document = json.loads(data)  # a scenario file is small: read whole
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}:{exc.lineno}:{exc.colno}: neither JSON Lines nor a JSON document: {exc.msg}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason}") from exc
    if isinstance(document, dict) and isinstance(document.get("events"), list):
        return document.get("now"), document["events"]
    if isinstance(document, list):
        return None, document
    raise ConfigError(f"{path}: a JSON document must be a list or have an 'events' list")


def fold(
    messages: Iterable[Message],
    aggregates: Collection[Aggregate],
    history: History | None = None,
    seen: Digests | None = None,
) -> History:
    """Fold ``messages`` into the users' and accounts' state, as a store would.

    ``seen`` holds the ``messageId`` digests folded before: a fold resumed in
    batches (the collector's moments report) passes the same one each time.
    """
    history = history or History()
    # The states live in the history's dictionaries, which make missing ones:
    # apply() changes them in place and nothing needs writing back.
    load_user, load_account = history.users.__getitem__, history.accounts.__getitem__
    groups = history.groups
    aggregates = frozenset(aggregates)
    seen = Digests() if seen is None else seen
    for message in messages:
        key = digest(message.message_id)
        if key in seen:
            history.duplicates += 1
            continue
        seen.add(key)
        apply(message, load_user, load_account, aggregates)
        if type(message) is Group:
            groups.add(message.group_id)
    return history
