"""Loading a rules file: decode, validate, compile.

Decoding (TOML or JSON, then msgspec's ``RulesSpec``) and compiling (each model,
moment and entitlement into ``Rules``) happen here; every mistake is raised where
``_locator`` points it: at the key, the value, or the spot inside an expression.
Mistakes that may be meant become ``RulesWarning``s on ``Rules.warnings`` instead.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path as FilePath
from typing import Any, Final, Literal

import msgspec

from . import MAX_RULES_BYTES
from ._compiler import (
    Choices,
    Compiled,
    ExpressionError,
    TraitLiteral,
    Type,
    compile_expression,
    did_you_mean,
)
from ._lexer import parse_duration
from ._locator import Locator, schema_error, whole
from ._model import (
    PQA,
    CapGroup,
    Entitlements,
    Model,
    MomentKind,
    Moments,
    Route,
    Rules,
    RulesWarning,
    Signal,
)
from ._parser import Binary, Constant, ListLiteral, parse
from ._positions import Path, Span, find_places
from ._schema import EntitlementsSpec, ModelSpec, MomentSpec, RulesSpec, SignalSpec

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


def load(path: str | FilePath) -> Rules:
    """Load and compile the rules file at ``path`` (``.json`` is JSON, else TOML)."""
    file = FilePath(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise whole(_shown(file), "no such file") from None
    except IsADirectoryError:
        raise whole(_shown(file), "is a directory, not a rules file") from None
    except OSError as exc:
        raise whole(_shown(file), f"cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:  # a NUL, or a lone surrogate no file system can encode
        why = "a lone surrogate" if isinstance(exc, UnicodeEncodeError) else "a NUL character"
        raise whole(_shown(file), f"not a file path: it contains {why}") from None
    kind: Format = "json" if file.suffix.lower() == ".json" else "toml"
    return _load(data, str(file), kind)


def loads(text: str | bytes, *, name: str = "<rules>", format: Format = "toml") -> Rules:
    """Load and compile rules from ``text``; ``name`` is used in error messages."""
    data = text.encode() if isinstance(text, str) else text
    return _load(data, name, format)


def _shown(file: FilePath) -> str:
    """``file`` as text any log or terminal can print: undecodable parts and NUL escaped."""
    return str(file).encode(errors="backslashreplace").decode().replace("\0", "\\x00")


def _load(data: bytes, origin: str, kind: Format) -> Rules:
    if len(data) > MAX_RULES_BYTES:
        raise whole(origin, f"rules file is over {MAX_RULES_BYTES} bytes")
    try:
        source = data.decode()
    except UnicodeDecodeError as exc:
        where = Locator(data.decode(errors="replace"), origin, {})
        line, column = where.position(len(data[: exc.start].decode()))
        raise where.error(
            f"rules file is not UTF-8 (byte 0x{data[exc.start]:02x})", line=line, column=column
        ) from None
    where, spec = _decode(source, origin, kind)
    return _Compiler(where).rules(spec)


def _decode(source: str, origin: str, kind: Format) -> tuple[Locator, RulesSpec]:
    where = Locator(source, origin, {})
    try:
        raw: Any = tomllib.loads(source) if kind == "toml" else json.loads(source)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line, column = (int(found[1]), int(found[2])) if found else where.position(len(source))
        message = re.sub(r"\s*\(at (?:line \d+, column \d+|end of document)\)", "", str(exc))
        raise where.error(f"TOML syntax error: {message}", line=line, column=column) from exc
    except json.JSONDecodeError as exc:
        raise where.error(
            f"JSON syntax error: {exc.msg}", line=exc.lineno, column=exc.colno
        ) from exc
    where = Locator(source, origin, find_places(source, kind))
    try:
        return where, msgspec.convert(raw, RulesSpec)
    except msgspec.ValidationError as exc:
        raise schema_error(where, raw, str(exc)) from None


class _Compiler:
    """Compiles a decoded ``RulesSpec`` into ``Rules``, turning errors into ``RulesError``."""

    def __init__(self, where: Locator) -> None:
        self.where = where
        self.origin = where.origin
        self.traits: dict[str, Type] = {}
        self.literals: list[tuple[Span, TraitLiteral]] = []

    def rules(self, spec: RulesSpec) -> Rules:
        self.traits = {
            f"{scope}.{name}": Type(kind)
            for scope, declared in (("user", spec.traits.user), ("account", spec.traits.account))
            for name, kind in declared.items()
        }
        models = {name: self.model(name, model) for name, model in spec.model.items()}
        primary = spec.primary or next(iter(spec.model))
        if primary not in models:
            raise self.where.at_value(
                ("primary",),
                f"primary model {primary!r} is not defined{did_you_mean(primary, models)}",
            )
        pqa = None
        if spec.pqa is not None:
            model = models.get(spec.pqa.model)
            if model is None:
                raise self.where.at_value(
                    ("pqa", "model"),
                    f"pqa model {spec.pqa.model!r} is not defined"
                    f"{did_you_mean(spec.pqa.model, models)}",
                )
            tiers = [name for _, name in model.tiers]
            if spec.pqa.tier not in tiers:
                raise self.where.at_value(
                    ("pqa", "tier"),
                    f"pqa tier {spec.pqa.tier!r} is not a tier of {model.name!r}"
                    f"{did_you_mean(spec.pqa.tier, tiers)}",
                )
            pqa = PQA(model=spec.pqa.model, tier=spec.pqa.tier, min_users=spec.pqa.min_users)
        # Checked even without moment kinds: a mistake in it is a mistake in the file.
        conversion = self.expr(
            ("moments", "conversion"), spec.moments.conversion, Type.BOOL, "user"
        )
        window = self.duration(("moments", "conversion_window"), spec.moments.conversion_window)
        moments = self.moments(spec, models, primary) if spec.moment else None
        if moments is not None:
            moments = msgspec.structs.replace(
                moments, conversion=conversion, conversion_window=window
            )
        entitlements = None if spec.entitlements is None else self.entitlements(spec.entitlements)
        return Rules(
            models=models,
            primary=primary,
            pqa=pqa,
            origin=self.origin,
            moments=moments,
            entitlements=entitlements,
            warnings=self.warnings(),
        )

    def warnings(self) -> tuple[RulesWarning, ...]:
        """Warn once per undeclared trait compared with literals of two types."""
        first: dict[str, tuple[Type, Span]] = {}
        warnings: dict[str, RulesWarning] = {}
        for span, literal in sorted(self.literals, key=lambda item: item[0].offset):
            kind, where = first.setdefault(literal.trait, (literal.type, span))
            if kind is not literal.type and literal.trait not in warnings:
                line, column, _ = self.where.locate(where)
                warnings[literal.trait] = self.where.warning(
                    f"{literal.trait} is compared with a {kind.value} at {line}:{column} "
                    f"and a {literal.type.value} here; declare its type in [traits], "
                    f'e.g. {literal.trait} = "{kind.value}"',
                    span,
                )
        return tuple(warnings.values())

    def moments(self, spec: RulesSpec, models: dict[str, Model], primary: str) -> Moments:
        model = spec.moments.model or primary
        if model not in models or models[model].subject != "user":
            raise self.where.at_value(
                ("moments", "model") if spec.moments.model else ("model", model),
                f"moments model {model!r} is not a user model of this file",
            )
        tiers = tuple(tier for _, tier in models[model].tiers)
        choices = {"tier": _tier_choices(model, tiers)}
        kinds = [self.moment(name, kind, choices) for name, kind in spec.moment.items()]
        caps = []
        for index, group in enumerate(spec.moments.caps):
            path: Path = ("moments", "caps", index)
            for position, kind in enumerate(group.kinds):
                if kind not in spec.moment:
                    raise self.where.at_value(
                        (*path, "kinds", position),
                        f"cap names unknown moment {kind!r}{did_you_mean(kind, spec.moment)}",
                    )
            per = self.duration((*path, "per"), group.per)
            caps.append(CapGroup(kinds=frozenset(group.kinds), max=group.max, per=per))
        return Moments(
            model=model,
            trial_end=spec.moments.trial_end,
            kinds=tuple(sorted(kinds, key=lambda kind: -kind.priority)),
            caps=tuple(caps),
        )

    def moment(self, name: str, spec: MomentSpec, choices: dict[str, Choices]) -> MomentKind:
        path: Path = ("moment", name)
        content = {"title": spec.title, "body": spec.body, "cta": spec.cta}
        for field, text in content.items():
            for placeholder in _PLACEHOLDER.finditer(text):
                if not _KNOWN_PLACEHOLDER.match(placeholder[1]):
                    span = self.where.inside(
                        (*path, field), placeholder.start(), len(placeholder[0])
                    )
                    raise self.where.at(
                        span,
                        f"unknown placeholder {placeholder[0]}: use {{days_left}}, {{feature}}, "
                        "{plan}, {score}, {tier}, {user_id}, {user.NAME} or {account.NAME}",
                    )
        cap = None
        if spec.cap is not None:
            cap = (spec.cap.max, self.duration((*path, "cap", "per"), spec.cap.per))
        cooldowns = tuple(
            (cooldown.after, self.duration((*path, "cooldown", index, "for"), cooldown.duration))
            for index, cooldown in enumerate(spec.cooldown)
        )
        return MomentKind(
            name=name,
            at=spec.at,
            when=self.expr(
                (*path, "when"),
                spec.when,
                Type.BOOL,
                "user",
                variables=_MOMENT_VARIABLES,
                choices=choices,
            ),
            priority=spec.priority,
            cap=cap,
            cooldowns=cooldowns,
            holdout=spec.holdout,
            content=content,
        )

    def duration(self, path: Path, text: str) -> int:
        """Microseconds of a duration setting such as ``"24h"``."""
        try:
            return parse_duration(text) * _MICROS
        except ExpressionError as exc:
            raise self.where.in_value(path, exc) from None

    def entitlements(self, spec: EntitlementsSpec) -> Entitlements:
        if spec.default_plan is not None and spec.default_plan not in spec.plans:
            raise self.where.at_value(
                ("entitlements", "default_plan"),
                f"default plan {spec.default_plan!r} is not one of the plans"
                f"{did_you_mean(spec.default_plan, spec.plans)}",
            )
        known = {feature for listed in spec.plans.values() for feature in listed}
        for feature in spec.names:
            if feature not in known:  # a misspelt id would silently keep the id on screen
                raise self.where.at_key(
                    ("entitlements", "names", feature), f"{feature!r} is not a feature of any plan"
                )
        return Entitlements(
            plan=self.required(("entitlements", "plan"), spec.plan, Type.ANY, "user"),
            default_plan=spec.default_plan,
            plans={plan: frozenset(features) for plan, features in spec.plans.items()},
            names=dict(spec.names),
        )

    def model(self, name: str, spec: ModelSpec) -> Model:
        path: Path = ("model", name)
        tiers = self.tiers(path, spec.tiers)
        choices = {"tier": _tier_choices(name, tuple(tiers))}
        scope = spec.subject
        gate = self.expr((*path, "gate"), spec.gate, Type.BOOL, scope)
        multiplier = self.expr((*path, "multiplier"), spec.multiplier, Type.NUMBER, scope)
        signals = tuple(
            self.signal((*path, "signals", signal_name), signal_name, signal, scope)
            for signal_name, signal in spec.signals.items()
        )
        routes = tuple(
            Route(
                route=route.route,
                when=self.required(
                    (*path, "routes", index, "when"),
                    route.when,
                    Type.BOOL,
                    scope,
                    variables=_ROUTE_VARIABLES,
                    choices=choices,
                ),
            )
            for index, route in enumerate(spec.routes)
        )
        dnc = self.expr(
            (*path, "do_not_contact"),
            spec.do_not_contact,
            Type.BOOL,
            scope,
            variables=_ROUTE_VARIABLES,
            choices=choices,
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
            tiers=tuple((value, tier) for tier, value in tiers.items()),
            routes=routes,
            default_route=spec.default_route,
            do_not_contact=dnc,
            aggregates=frozenset().union(*(c.aggregates for c in compiled if c is not None)),
        )

    def tiers(self, path: Path, tiers: dict[str, float]) -> dict[str, float]:
        """Check that thresholds rise in the order tiers are written: the order they rank.

        Written out of order, a tier would be skipped without a word: with
        ``hot = 91, burning = 76`` a score of 105 would be labelled hot.
        """
        previous = None
        for tier, threshold in tiers.items():
            if previous is not None and threshold <= tiers[previous]:
                message = (
                    f"two tiers share one threshold: {previous!r} and {tier!r} are both "
                    f"{threshold:g}"
                    if threshold == tiers[previous]
                    else f"tier thresholds must rise in the order written: {tier!r} = "
                    f"{threshold:g} comes after {previous!r} = {tiers[previous]:g}"
                )
                raise self.where.at_value((*path, "tiers", tier), message)
            previous = tier
        return tiers

    def signal(
        self, path: Path, name: str, spec: SignalSpec, scope: Literal["user", "account"]
    ) -> Signal:
        if (spec.when is None) == (spec.value is None):
            raise self.where.at_key(path, f"signal {name!r} needs exactly one of 'when' or 'value'")
        when = self.expr((*path, "when"), spec.when, Type.BOOL, scope)
        value = self.expr((*path, "value"), spec.value, Type.NUMBER, scope)
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
        path: Path,
        source: str | None,
        expect: Type,
        scope: Literal["user", "account"],
        *,
        variables: dict[str, Type] | None = None,
        choices: dict[str, Choices] | None = None,
    ) -> Compiled | None:
        if source is None:
            return None
        return self.required(path, source, expect, scope, variables=variables, choices=choices)

    def required(
        self,
        path: Path,
        source: str,
        expect: Type,
        scope: Literal["user", "account"],
        *,
        variables: dict[str, Type] | None = None,
        choices: dict[str, Choices] | None = None,
    ) -> Compiled:
        try:
            compiled = compile_expression(
                source,
                variables=variables or {},
                expect=expect,
                scope=scope,
                traits=self.traits,
                choices=choices or {},
            )
        except ExpressionError as exc:
            raise self.where.in_value(path, exc) from None
        self.literals += [
            (self.where.inside(path, literal.offset, literal.length), literal)
            for literal in compiled.literals
        ]
        return compiled


def _tier_choices(model: str, tiers: tuple[str, ...]) -> Choices:
    """Return what ``tier`` may be compared with in expressions about ``model``."""
    return Choices("tier", f"model {model!r}", tiers)


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
