"""Loading a rules file: decode, validate, compile, and report errors precisely.

Every error becomes one ``RulesError`` naming the file, line and column, with the
offending line and a caret, the way a compiler reports. TOML's and JSON's parsers
do not say where a *value* sits in the file, so the loader finds it: it walks the
key path through the text and then looks for the value's literal text after it.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from .._exceptions import RulesError
from . import MAX_RULES_BYTES
from ._compiler import Compiled, ExpressionError, Type, compile_expression
from ._lexer import parse_duration
from ._model import (
    PQA,
    CapGroup,
    Entitlements,
    Model,
    MomentKind,
    Moments,
    Route,
    Rules,
    Signal,
)
from ._parser import Binary, Constant, ListLiteral, parse
from ._schema import EntitlementsSpec, ModelSpec, MomentSpec, RulesSpec

__all__ = ["Format", "load", "loads"]

Format = Literal["toml", "json"]

_ROUTE_VARIABLES: Final = {
    "score": Type.NUMBER,
    "tier": Type.STRING,
    "gate_passed": Type.BOOL,
    "user_id": Type.STRING,
    "account_id": Type.ANY,
}
_MOMENT_VARIABLES: Final = {
    **_ROUTE_VARIABLES,
    "days_left": Type.ANY,
    "feature": Type.ANY,
    "plan": Type.ANY,
}
_PLACEHOLDER: Final = re.compile(r"\{([^{}]*)\}")
_KNOWN_PLACEHOLDER: Final = re.compile(
    r"^(?:days_left|feature|plan|score|tier|user_id|(?:user|account)\.[A-Za-z_][A-Za-z0-9_]*)$"
)
_MICROS: Final = 1_000_000


def load(path: str | Path) -> Rules:
    """Load and compile the rules file at ``path`` (``.json`` is JSON, else TOML)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise RulesError(
            f"cannot read rules: {exc.strerror}", path=str(file), line=1, column=1
        ) from exc
    kind: Format = "json" if file.suffix.lower() == ".json" else "toml"
    return _load(data, str(file), kind)


def loads(text: str | bytes, *, name: str = "<rules>", format: Format = "toml") -> Rules:
    """Load and compile rules from ``text``; ``name`` is used in error messages."""
    data = text.encode() if isinstance(text, str) else text
    return _load(data, name, format)


def _load(data: bytes, origin: str, kind: Format) -> Rules:
    if len(data) > MAX_RULES_BYTES:
        raise RulesError(
            f"rules file is over {MAX_RULES_BYTES} bytes", path=origin, line=1, column=1
        )
    try:
        source = data.decode()
    except UnicodeDecodeError as exc:
        raise RulesError("rules file is not UTF-8", path=origin, line=1, column=1) from exc
    spec = _decode(source, origin, kind)
    return _Compiler(source, origin).rules(spec)


def _decode(source: str, origin: str, kind: Format) -> RulesSpec:
    where = _Locator(source, origin)
    try:
        raw: Any = tomllib.loads(source) if kind == "toml" else json.loads(source)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line, column = (int(found[1]), int(found[2])) if found else (1, 1)
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise where.error(f"TOML syntax error: {message}", line=line, column=column) from exc
    except json.JSONDecodeError as exc:
        raise where.error(
            f"JSON syntax error: {exc.msg}", line=exc.lineno, column=exc.colno
        ) from exc
    try:
        return msgspec.convert(raw, RulesSpec)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        keys = [k for k in re.split(r"\.|\[|\]", path.rstrip("`")) if k]
        raise where.at_keys(keys, f"invalid rules: {message}") from exc


class _Locator:
    """Finds where keys and values sit in the rules text, for error messages."""

    def __init__(self, source: str, origin: str) -> None:
        self.source = source
        self.origin = origin

    def error(self, message: str, *, line: int, column: int, width: int = 1) -> RulesError:
        lines = self.source.splitlines() or [""]
        text = lines[min(line, len(lines)) - 1]
        return RulesError(
            message, path=self.origin, line=line, column=column, text=text, width=width
        )

    def key_offset(self, keys: list[str]) -> int:
        """Offset of the last of ``keys`` found in order (0 if none is found)."""
        offset = found = 0
        for key in keys:
            pattern = re.compile(rf"(?<![\w\-]){re.escape(key)}(?![\w\-])")
            match = pattern.search(self.source, offset)
            if match is not None:
                offset = found = match.start()
        return found

    def at_keys(self, keys: list[str], message: str) -> RulesError:
        offset = self.key_offset(keys)
        line, column = self.position(offset)
        width = len(keys[-1]) if keys and self.source.startswith(keys[-1], offset) else 1
        return self.error(message, line=line, column=column, width=width)

    def position(self, offset: int) -> tuple[int, int]:
        line = self.source.count("\n", 0, offset) + 1
        return line, offset - (self.source.rfind("\n", 0, offset) + 1) + 1

    def in_value(self, keys: list[str], value: str, error: ExpressionError) -> RulesError:
        """Point at ``error`` inside the expression ``value`` stored under ``keys``."""
        start = self.key_offset(keys)
        for escape in (_literal, _escaped):
            raw = escape(value)
            at = self.source.find(raw, start)
            if at >= 0:
                column_start = at + len(escape(value[: error.offset]))
                width = len(escape(value[error.offset : error.offset + error.length]))
                line, column = self.position(column_start)
                return self.error(str(error), line=line, column=column, width=width)
        return self.at_keys(keys, str(error))  # pragma: no cover - values are in the text


def _literal(text: str) -> str:
    return text


def _escaped(text: str) -> str:
    return json.dumps(text)[1:-1]


class _Compiler:
    """Compiles a decoded ``RulesSpec`` into ``Rules``, turning errors into ``RulesError``."""

    def __init__(self, source: str, origin: str) -> None:
        self.where = _Locator(source, origin)
        self.origin = origin

    def rules(self, spec: RulesSpec) -> Rules:
        models = {name: self.model(name, model) for name, model in spec.model.items()}
        primary = spec.primary or next(iter(spec.model))
        if primary not in models:
            raise self.where.at_keys(["primary"], f"primary model {primary!r} is not defined")
        pqa = None
        if spec.pqa is not None:
            model = models.get(spec.pqa.model)
            if model is None:
                raise self.where.at_keys(
                    ["pqa", "model"], f"pqa model {spec.pqa.model!r} is not defined"
                )
            if spec.pqa.tier not in {name for _, name in model.tiers}:
                raise self.where.at_keys(
                    ["pqa", "tier"], f"pqa tier {spec.pqa.tier!r} is not a tier of {model.name!r}"
                )
            pqa = PQA(model=spec.pqa.model, tier=spec.pqa.tier, min_users=spec.pqa.min_users)
        return Rules(
            models=models,
            primary=primary,
            pqa=pqa,
            origin=self.origin,
            moments=self.moments(spec, models, primary) if spec.moment else None,
            entitlements=None
            if spec.entitlements is None
            else self.entitlements(spec.entitlements),
        )

    def moments(self, spec: RulesSpec, models: dict[str, Model], primary: str) -> Moments:
        model = spec.moments.model or primary
        if model not in models or models[model].subject != "user":
            raise self.where.at_keys(
                ["moments", "model"], f"moments model {model!r} is not a user model of this file"
            )
        kinds = [self.moment(name, kind) for name, kind in spec.moment.items()]
        caps = []
        for group in spec.moments.caps:
            unknown = sorted(set(group.kinds) - set(spec.moment))
            if unknown:
                raise self.where.at_keys(
                    ["moments", "caps", unknown[0]], f"cap names unknown moment {unknown[0]!r}"
                )
            per = self.duration(["moments", "caps", "per"], group.per)
            caps.append(CapGroup(kinds=frozenset(group.kinds), max=group.max, per=per))
        return Moments(
            model=model,
            trial_end=spec.moments.trial_end,
            kinds=tuple(sorted(kinds, key=lambda kind: -kind.priority)),
            caps=tuple(caps),
        )

    def moment(self, name: str, spec: MomentSpec) -> MomentKind:
        keys = ["moment", name]
        content = {"title": spec.title, "body": spec.body, "cta": spec.cta}
        for field, text in content.items():
            for placeholder in _PLACEHOLDER.findall(text):
                if not _KNOWN_PLACEHOLDER.match(placeholder):
                    raise self.where.at_keys(
                        [*keys, field],
                        f"unknown placeholder {{{placeholder}}}: use {{days_left}}, {{feature}}, "
                        "{plan}, {score}, {tier}, {user_id}, {user.NAME} or {account.NAME}",
                    )
        cap = None
        if spec.cap is not None:
            cap = (spec.cap.max, self.duration([*keys, "cap", "per"], spec.cap.per))
        cooldowns = tuple(
            (cooldown.after, self.duration([*keys, "cooldown", "for"], cooldown.duration))
            for cooldown in spec.cooldown
        )
        return MomentKind(
            name=name,
            at=spec.at,
            when=self.expr([*keys, "when"], spec.when, Type.BOOL, "user", _MOMENT_VARIABLES),
            priority=spec.priority,
            cap=cap,
            cooldowns=cooldowns,
            holdout=spec.holdout,
            content=content,
        )

    def duration(self, keys: list[str], text: str) -> int:
        """Microseconds of a duration setting such as ``"24h"``."""
        try:
            return parse_duration(text) * _MICROS
        except ExpressionError as exc:
            raise self.where.in_value(keys, text, exc) from None

    def entitlements(self, spec: EntitlementsSpec) -> Entitlements:
        if spec.default_plan is not None and spec.default_plan not in spec.plans:
            raise self.where.at_keys(
                ["entitlements", "default_plan"],
                f"default plan {spec.default_plan!r} is not one of the plans",
            )
        known = {feature for listed in spec.plans.values() for feature in listed}
        for feature in spec.names:
            if feature not in known:  # a misspelt id would silently keep the id on screen
                raise self.where.at_keys(
                    ["entitlements", "names", feature], f"{feature!r} is not a feature of any plan"
                )
        return Entitlements(
            plan=self.required(["entitlements", "plan"], spec.plan, Type.ANY, "user"),
            default_plan=spec.default_plan,
            plans={plan: frozenset(features) for plan, features in spec.plans.items()},
            names=dict(spec.names),
        )

    def model(self, name: str, spec: ModelSpec) -> Model:
        keys = ["model", name]
        scope = spec.subject
        gate = self.expr([*keys, "gate"], spec.gate, Type.BOOL, scope)
        multiplier = self.expr([*keys, "multiplier"], spec.multiplier, Type.NUMBER, scope)
        signals = tuple(
            self.signal([*keys, "signals", signal_name], signal_name, signal, scope)
            for signal_name, signal in spec.signals.items()
        )
        thresholds = sorted(spec.tiers.items(), key=lambda item: item[1])
        if len({value for _, value in thresholds}) != len(thresholds):
            raise self.where.at_keys([*keys, "tiers"], "two tiers share one threshold")
        routes = tuple(
            Route(
                route=route.route,
                when=self.required(
                    [*keys, "routes", "when"], route.when, Type.BOOL, scope, _ROUTE_VARIABLES
                ),
            )
            for route in spec.routes
        )
        dnc = self.expr(
            [*keys, "do_not_contact"], spec.do_not_contact, Type.BOOL, scope, _ROUTE_VARIABLES
        )
        compiled = [gate, multiplier, dnc, *(route.when for route in routes)]
        for signal in signals:
            compiled += [signal.when, signal.value, signal.observe]
        return Model(
            name=name,
            subject=spec.subject,
            gate=gate,
            multiplier=multiplier,
            signals=signals,
            tiers=tuple((value, tier) for tier, value in thresholds),
            routes=routes,
            default_route=spec.default_route,
            do_not_contact=dnc,
            aggregates=frozenset().union(*(c.aggregates for c in compiled if c is not None)),
        )

    def signal(
        self, keys: list[str], name: str, spec: Any, scope: Literal["user", "account"]
    ) -> Signal:
        if (spec.when is None) == (spec.value is None):
            raise self.where.at_keys(
                keys, f"signal {name!r} needs exactly one of 'when' or 'value'"
            )
        when = self.expr([*keys, "when"], spec.when, Type.BOOL, scope)
        value = self.expr([*keys, "value"], spec.value, Type.NUMBER, scope)
        observe = needs = None
        if spec.when is not None:
            parts = split_comparison(spec.when)
            if parts is not None:
                measured, needs = parts
                observe = compile_expression(measured, scope=scope)
        return Signal(
            name=name,
            label=spec.label or name.replace("_", " "),
            points=spec.points,
            when=when,
            value=value,
            observe=observe if value is None else value,
            needs=needs,
        )

    def expr(
        self,
        keys: list[str],
        source: str | None,
        expect: Type,
        scope: Literal["user", "account"],
        variables: dict[str, Type] | None = None,
    ) -> Compiled | None:
        if source is None:
            return None
        return self.required(keys, source, expect, scope, variables)

    def required(
        self,
        keys: list[str],
        source: str,
        expect: Type,
        scope: Literal["user", "account"],
        variables: dict[str, Type] | None = None,
    ) -> Compiled:
        try:
            return compile_expression(source, variables=variables or {}, expect=expect, scope=scope)
        except ExpressionError as exc:
            raise self.where.in_value(keys, source, exc) from None


_MEASURES: Final = frozenset({"==", "!=", "<", "<=", ">", ">=", "in", "not in"})


def split_comparison(source: str) -> tuple[str, str] | None:
    """Split ``X op constant`` into the measured ``X`` and ``op constant``.

    ``count("page_viewed", path="/pricing") >= 3`` gives the measured side and
    ``>= 3``, so a reason can say "pricing page views = 4, needs >= 3". Anything
    else (``a and b``, ``x > y``) returns None: the reason shows whether it held.
    """
    node = parse(source)
    if not (
        isinstance(node, Binary)
        and node.op in _MEASURES
        and isinstance(node.right, Constant | ListLiteral)
        and not isinstance(node.left, Constant)
    ):
        return None
    left, right = node.left, node.right
    measured = source[left.offset : left.offset + left.length]
    constant = source[right.offset : right.offset + right.length]
    return measured, f"{node.op} {constant}"
