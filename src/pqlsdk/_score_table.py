"""``pqlsdk score``'s output: users and accounts ranked with why, as a table or JSON.

Whichever engine computed the scores (python, duckdb, postgres, spark), they are
``Score`` and ``AccountScore`` objects printed by this one module: the engines'
outputs can only differ where their numbers do.
"""

from __future__ import annotations

import codecs
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final, TextIO

import msgspec

from ._formats import sniff
from ._history import History, read
from ._scoring import AccountScore, Score, encodable
from .rules import PQA, Rules

__all__ = ["formatted_users", "print_scores", "report_invalid", "say_refused"]


def print_scores(
    rules: Rules,
    model: str,
    when: str,
    *,
    users: Iterable[Score],
    accounts: Iterable[AccountScore],
    members: dict[str, list[str]],
    as_json: bool,
    formatted: Iterable[bytes | memoryview] | None = None,
) -> None:
    """Print users' and accounts' scores as a table or JSON, whichever engine made them.

    ``formatted``: with ``as_json``, the users' object already formatted
    (``formatted_users``, from the entries an engine wrote), in place of ``users``.
    """
    if not as_json:
        print(f"Users by score under {model!r}, scored at {when}:")
        _print_table([_row(score) for score in users])
        # Members at the highest tiers first: those are what makes (or would make) a PQA.
        rank = rules.model(rules.pqa.model).rank if rules.pqa is not None else None
        rows = [_account_row(account, members.get(account.id, []), rank) for account in accounts]
        _print_accounts(rules.pqa, rows)
        return
    write = _writer(sys.stdout)
    write(f'{{\n  "now": {_json(when)},\n'.encode())
    if formatted is None:
        formatted = _object("users", ((score.id, _encode(encodable(score))) for score in users))
    for text in formatted:
        write(text)
    write(b",\n")
    for text in _object(
        "accounts", ((account.id, _encode(account.to_dict())) for account in accounts)
    ):
        write(text)
    write(b"\n}\n")
    sys.stdout.flush()


def say_refused(refused: int, events: Path | None) -> None:
    """Say on stderr how many messages an SQL engine refused, and why.

    ``events``: the file the engine read, if any. In a JSON file the python
    reader names each refused message, in the words of ``--engine python``
    (rare, so reading the file again is cheap enough); elsewhere a count.
    """
    if not refused:
        return
    if events is not None and sniff(events) == "json":
        history = History()
        for _ in read(events, history):
            pass
        report_invalid(history)
        return
    print(
        f"pqlsdk: skipped {refused} invalid message(s): without a userId or an "
        "anonymousId, a timestamp with a time zone, a track's event or a group's groupId",
        file=sys.stderr,
    )


def report_invalid(history: History) -> None:
    """Say on stderr which messages were skipped: the first few by place, then a count."""
    total = sum(history.skipped.values())
    if not total:
        return
    reasons = ", ".join(f"{reason}: {count}" for reason, count in history.skipped.most_common())
    lines = [f"pqlsdk: skipped {total} invalid message(s) ({reasons}):"]
    lines += [f"  {place}" for place in history.invalid]
    if total > len(history.invalid):
        lines.append(f"  ... and {total - len(history.invalid)} more invalid message(s)")
    print("\n".join(lines), file=sys.stderr)


def _json(value: Any) -> str:
    """``value`` as JSON (a string: the instant the scores are for)."""
    return msgspec.json.encode(value).decode()


_CHUNK_BYTES: Final = 32 * 1024
"""How many bytes of items ``_object`` formats at once: one call per chunk, not per item.

A chunk's texts (the items joined, formatted) are freed before the next
chunk's are made: under glibc's mmap threshold (128 KiB) they come from the
heap, whose memory the next reuses; past it each is a fresh mapping whose
pages the kernel zeroes on first touch. 256 users a chunk (about 800 KiB
formatted) made some 20,000 page faults at 10,000 users, 0.05 s of system
time; 32 KiB of items (about 60 KiB formatted) makes none, for the same text.
"""


_encode = msgspec.json.encode


def formatted_users(entries: Iterable[tuple[str, bytes]]) -> list[bytes | memoryview]:
    """Format the users' entries (by id) as ``print_scores`` prints them (its ``formatted``).

    The duckdb engine formats them while it computes the accounts, which come after.
    """
    return list(_object("users", entries))


def _writer(out: TextIO) -> Callable[[bytes | memoryview], object]:
    """Return what writes JSON (UTF-8) to ``out``: to its bytes underneath where it can.

    A text stream encoding UTF-8 (a file, a pipe, a terminal) takes the bytes
    as they are: 30 MB of users' entries are not decoded to be encoded again
    (20 ms). Else (another encoding, a stream of text alone) they are decoded.
    """
    buffer = getattr(out, "buffer", None)
    encoding = getattr(out, "encoding", None)
    if (
        buffer is not None
        and encoding
        and os.linesep == "\n"
        and codecs.lookup(encoding).name == "utf-8"
    ):
        out.flush()  # what was written as text comes first
        write: Callable[[bytes | memoryview], object] = buffer.write
        return write
    return lambda data: out.write(bytes(data).decode())


def _object(name: str, items: Iterable[tuple[str, bytes]]) -> Iterator[bytes | memoryview]:
    """Yield ``"name": {...}`` chunk by chunk, formatted as ``json.dumps(indent=2)`` would.

    Formatting is structural: a chunk of items formatted as one object, its
    lines indented two spaces more, reads as those items formatted one by one.
    One msgspec call per chunk costs far less than one per item (10,000 users).
    """
    yield f'  "{name}": {{'.encode()
    encode = msgspec.json.encode
    chunk: list[bytes] = []
    size = 0
    separator = b"\n"
    for key, value in items:
        item = encode(key) + b":" + value
        chunk.append(item)
        size += len(item)
        if size >= _CHUNK_BYTES:
            yield separator
            yield _formatted(chunk)
            chunk, size, separator = [], 0, b",\n"
    if chunk:
        yield separator
        yield _formatted(chunk)
        separator = b",\n"
    yield b"\n  }" if separator != b"\n" else b"}"


def _formatted(chunk: list[bytes]) -> memoryview:
    """Format the items of ``chunk`` (``key:value`` JSON) as ``_object``'s lines.

    The chunk is formatted where its items are, one object down (``{"": {...}}``):
    its lines come out indented as they are printed, with no pass to indent them.
    """
    text = msgspec.json.format(b'{"":{' + b",".join(chunk) + b"}}", indent=2)
    # Drop the two objects' braces (and the first's empty key): the items' lines are left.
    return memoryview(text)[_OPENED:_CLOSED]


_OPENED: Final = len(b'{\n  "": {\n')
_CLOSED: Final = -len(b"\n  }\n}")


_WHY = " " * 7
"""How far a row's explanation is indented: under the subject's id."""


def _why(score: Score) -> str:
    """Why a score is what it is, for the table: gate and multiplier, then what fired."""
    lines = []
    # Past a closed gate the score is 0 whatever the multiplier: only the gate matters.
    shown = (
        (score.gate_text(),)
        if not score.gate_passed
        else (score.gate_text(), score.multiplier_text())
    )
    measured = "; ".join(text for text in shown if text)
    if not score.gate_passed:
        measured += " (score 0)"
    if measured:
        lines.append(f"{_WHY}{measured}")
    fired = sorted((r for r in score.reasons if r.fired), key=lambda r: -abs(r.earned))
    lines += [f"{_WHY}+ {reason}" for reason in fired]
    if not fired:
        lines.append(f"{_WHY}no signal fired")
    return "\n".join(lines)


_Row = tuple[float, str, str, str, str]
"""A ranked table's row: score, user id, tier, route, and why (lines to print under it)."""


def _row(score: Score) -> _Row:
    return score.score, score.id, score.tier, score.route, _why(score)


def _print_table(rows: list[_Row]) -> None:
    ranked = sorted(rows, key=lambda row: (-row[0], row[1]))
    width = max([4, *(len(row[1]) for row in ranked)])
    print(f"{'#':>3}  {'user':<{width}}  {'score':>8}  {'tier':<9} route")
    for rank, (points, user_id, tier, route, why) in enumerate(ranked, 1):
        print(f"{rank:>3}  {user_id:<{width}}  {points:>8.2f}  {tier:<9} {route}")
        print(why)


_AccountRow = tuple[bool, int, float, str, int, str, str]
"""An account's row: PQA, qualifying members, own score, id, member count, members, why."""

_SHOWN_MEMBERS = 5
"""Members listed on an account's row; the rest are counted."""


def _account_row(
    account: AccountScore, members: Iterable[str], rank: Callable[[str], int] | None
) -> _AccountRow:
    tiers = account.members
    ordered = list(members)
    if rank is not None:
        ordered.sort(key=lambda member: -rank(tiers[member]))
    named = [f"{member} {tiers[member]}" if tiers else member for member in ordered]
    shown = ", ".join(named[:_SHOWN_MEMBERS])
    if len(named) > _SHOWN_MEMBERS:
        shown += f", +{len(named) - _SHOWN_MEMBERS} more"
    own = account.score
    why = ""
    if own is not None:
        why = f"{_WHY}{own.model}: {own.score:.2f} {own.tier} -> {own.route}\n{_why(own)}"
    points = own.score if own is not None else 0.0
    return account.pqa, account.pql_users, points, account.id, len(named), shown or "-", why


def _print_accounts(pqa: PQA | None, rows: list[_AccountRow]) -> None:
    if not rows:
        return
    ranked = sorted(rows, key=lambda row: (not row[0], -row[1], -row[2], row[3]))
    rule = (
        "no [pqa] in the rules"
        if pqa is None
        else f"a PQA has {pqa.min_users} or more members {pqa.tier} or above under {pqa.model!r}"
    )
    print(f"\nAccounts ({rule}):")
    width = max([7, *(len(row[3]) for row in ranked)])
    print(f"{'#':>3}  {'account':<{width}}  {'PQA':<4} {'qualifying':<10}  members")
    for rank, (is_pqa, qualifying, _, account_id, size, members, why) in enumerate(ranked, 1):
        flag = "-" if pqa is None else "yes" if is_pqa else "no"
        count = "-" if pqa is None else f"{qualifying} of {size}"
        print(f"{rank:>3}  {account_id:<{width}}  {flag:<4} {count:<10}  {members}")
        if why:
            print(why)
