"""Syntax: the expression tree, and the parser that builds it within fixed bounds.

Precedence, lowest first: ``a if c else b`` (right-associative), ``or``, ``and``,
``not``, comparisons and ``in`` / ``not in`` (never chained), ``+ -``, ``* / %``,
unary ``-``, then calls, ``user.x`` / ``account.x``, literals and parentheses.

The parser also owns the size bounds, because it is the only stage that sees the
input before a tree exists: at most ``MAX_LENGTH`` characters and ``MAX_NODES``
nodes, and nesting at most ``MAX_DEPTH`` levels deep, in two senses reported as
one error. Reading never nests deeper than ``MAX_DEPTH`` (parentheses, arguments,
unary operators, ``else`` branches): checked on the way down, before a deep input
can exhaust the stack. And the tree is never deeper than ``MAX_DEPTH`` nodes, so
the compiler and the closures it builds recurse no deeper than that: checked as
each node is built, since ``a + b + c ...`` deepens the tree without nesting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Final

import attrs

from .._aggregates import Scalar, Scope
from ._lexer import KEYWORDS, ExpressionError, Token, tokenize

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_NODES",
    "Binary",
    "Call",
    "Conditional",
    "Constant",
    "Duration",
    "Keyword",
    "ListLiteral",
    "Name",
    "Node",
    "Trait",
    "Unary",
    "parse",
]

MAX_LENGTH: Final = 2_000
MAX_DEPTH: Final = 32
MAX_NODES: Final = 500

_COMPARISONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">=", "in"})
_TRAIT_SCOPES: Final = frozenset({"user", "account"})


@attrs.frozen
class Constant:
    """A literal number, string, ``true``, ``false`` or ``null``."""

    value: Scalar
    offset: int
    length: int
    height: ClassVar[int] = 1


@attrs.frozen
class Duration:
    """A duration literal such as ``7d``, in whole seconds."""

    seconds: int
    offset: int
    length: int
    height: ClassVar[int] = 1


@attrs.frozen
class Name:
    """A bare name: one of the caller's variables, or a mistake."""

    name: str
    offset: int
    length: int
    height: ClassVar[int] = 1


@attrs.frozen
class Trait:
    """``user.<name>`` or ``account.<name>``."""

    scope: Scope
    name: str
    offset: int
    length: int
    height: ClassVar[int] = 1


@attrs.frozen
class ListLiteral:
    """``[a, b, ...]``; the compiler requires the items to be literals."""

    items: tuple[Node, ...]
    offset: int
    length: int
    height: int = attrs.field(init=False, eq=False, repr=False)

    @height.default
    def _height(self) -> int:
        return 1 + max((item.height for item in self.items), default=0)


@attrs.frozen
class Unary:
    """``-x`` or ``not x``."""

    op: str
    operand: Node
    offset: int
    length: int
    height: int = attrs.field(init=False, eq=False, repr=False)

    @height.default
    def _height(self) -> int:
        return 1 + self.operand.height


@attrs.frozen
class Binary:
    """``left op right``: arithmetic, a comparison, ``in`` / ``not in``, ``and`` / ``or``."""

    op: str
    left: Node
    right: Node
    offset: int
    length: int
    height: int = attrs.field(init=False, eq=False, repr=False)

    @height.default
    def _height(self) -> int:
        return 1 + max(self.left.height, self.right.height)


@attrs.frozen
class Conditional:
    """``then if condition else otherwise``."""

    then: Node
    condition: Node
    otherwise: Node
    offset: int
    length: int
    height: int = attrs.field(init=False, eq=False, repr=False)

    @height.default
    def _height(self) -> int:
        return 1 + max(self.then.height, self.condition.height, self.otherwise.height)


@attrs.frozen
class Keyword:
    """A ``name=value`` argument; ``offset`` and ``length`` locate the name."""

    name: str
    value: Node
    offset: int
    length: int


@attrs.frozen
class Call:
    """``name(args..., keyword=value...)``; the name starts at ``offset``."""

    name: str
    args: tuple[Node, ...]
    keywords: tuple[Keyword, ...]
    offset: int
    length: int
    height: int = attrs.field(init=False, eq=False, repr=False)

    @height.default
    def _height(self) -> int:
        children = (*self.args, *(keyword.value for keyword in self.keywords))
        return 1 + max((child.height for child in children), default=0)


Node = Constant | Duration | Name | Trait | ListLiteral | Unary | Binary | Conditional | Call


def parse(source: str) -> Node:
    """Parse ``source`` into a tree, or raise ``ExpressionError`` saying where it fails."""
    if len(source) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is longer than {MAX_LENGTH} characters",
            MAX_LENGTH,
            len(source) - MAX_LENGTH,
        )
    return _Parser(tokenize(source)).parse()


class _Parser:
    """Recursive descent over the token list, one method per precedence level."""

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._position = 0
        self._end = 0  # where the last consumed token ends: the end of a node's span
        self._depth = 0
        self._nodes = 0

    def parse(self) -> Node:
        if self._peek.kind == "end":
            raise ExpressionError("expression is empty", 0)
        node = self._expression()
        if self._peek.kind != "end":
            raise _unexpected(self._peek)
        return node

    @property
    def _peek(self) -> Token:
        return self._tokens[self._position]

    def _next(self) -> Token:
        token = self._tokens[self._position]
        self._position += 1
        self._end = token.offset + len(token.text)
        return token

    def _expect(self, kind: str, message: str) -> Token:
        if self._peek.kind != kind:
            raise ExpressionError(message, self._peek.offset, self._peek.length)
        return self._next()

    def _span(self, start: int) -> tuple[int, int]:
        return start, self._end - start

    def _nested(self, parse: Callable[[], Node]) -> Node:
        """Parse one level down, refusing to go past ``MAX_DEPTH`` before recursing."""
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _too_deep(self._peek.offset, self._peek.length)
        node = parse()
        self._depth -= 1
        return node

    def _add(self, node: Node, at: Token) -> Node:
        """Count a new node and check the levels under it; ``at`` is where to point."""
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise ExpressionError(
                f"expression has more than {MAX_NODES} parts", node.offset, node.length
            )
        # Chains such as a + b + c deepen the tree without recursing: measured here.
        if node.height > MAX_DEPTH:
            raise _too_deep(at.offset, at.length)
        return node

    def _expression(self) -> Node:
        return self._nested(self._conditional)

    def _conditional(self) -> Node:
        start = self._peek.offset
        then = self._disjunction()
        if self._peek.kind != "if":
            return then
        keyword = self._next()
        condition = self._disjunction()
        self._expect("else", "expected 'else'")
        otherwise = self._expression()
        return self._add(Conditional(then, condition, otherwise, *self._span(start)), keyword)

    def _disjunction(self) -> Node:
        return self._chain(self._conjunction, frozenset({"or"}))

    def _conjunction(self) -> Node:
        return self._chain(self._inversion, frozenset({"and"}))

    def _inversion(self) -> Node:
        if self._peek.kind != "not":
            return self._comparison()
        token = self._next()
        operand = self._nested(self._inversion)
        return self._add(Unary("not", operand, *self._span(token.offset)), token)

    def _comparison(self) -> Node:
        start = self._peek.offset
        left = self._sum()
        op = self._comparison_ahead()
        if op is None:
            return left
        token = self._next()
        if op == "not in":
            self._next()
        right = self._sum()
        node = self._add(Binary(op, left, right, *self._span(start)), token)
        if self._comparison_ahead() is not None:
            raise ExpressionError(
                "comparisons cannot be chained; join them with 'and'",
                self._peek.offset,
                self._peek.length,
            )
        return node

    def _comparison_ahead(self) -> str | None:
        """Return the comparison operator at the current token, if one is there."""
        kind = self._peek.kind
        if kind in _COMPARISONS:
            return kind
        if kind == "not" and self._tokens[self._position + 1].kind == "in":
            return "not in"
        return None

    def _sum(self) -> Node:
        return self._chain(self._term, frozenset({"+", "-"}))

    def _term(self) -> Node:
        return self._chain(self._factor, frozenset({"*", "/", "%"}))

    def _chain(self, operand: Callable[[], Node], ops: frozenset[str]) -> Node:
        """Left-associative ``operand (op operand)*``, built without recursion."""
        start = self._peek.offset
        left = operand()
        while self._peek.kind in ops:
            token = self._next()
            right = operand()
            left = self._add(Binary(token.kind, left, right, *self._span(start)), token)
        return left

    def _factor(self) -> Node:
        if self._peek.kind != "-":
            return self._primary()
        token = self._next()
        operand = self._nested(self._factor)
        return self._add(Unary("-", operand, *self._span(token.offset)), token)

    def _primary(self) -> Node:
        token = self._peek
        if token.kind == "(":
            self._next()
            node = self._expression()
            self._expect(")", "expected ')'")
        elif token.kind == "[":
            node = self._list()
        elif token.kind == "name":
            node = self._name()
        else:
            node = self._add(_literal(token), token)
            self._next()
        if self._peek.kind == ".":
            # Only traits have fields; anything else would be attribute access.
            raise ExpressionError(
                "'.' can only follow 'user' or 'account'", self._peek.offset, self._peek.length
            )
        return node

    def _list(self) -> Node:
        token = self._next()
        items: list[Node] = []
        self._sequence("]", lambda: items.append(self._expression()))
        return self._add(ListLiteral(tuple(items), *self._span(token.offset)), token)

    def _name(self) -> Node:
        token = self._next()
        if self._peek.kind == "(":
            return self._call(token)
        if token.text not in _TRAIT_SCOPES:
            return self._add(Name(token.text, token.offset, token.length), token)
        scope: Scope = "user" if token.text == "user" else "account"
        if self._peek.kind != ".":
            raise ExpressionError(
                f"'{scope}' needs a trait name, like {scope}.plan", token.offset, token.length
            )
        self._next()
        field = self._peek
        # A keyword is a fine trait name here: user.in cannot be misread.
        if field.kind != "name" and field.kind not in KEYWORDS:
            raise ExpressionError(
                f"expected a trait name after '{scope}.'", field.offset, field.length
            )
        if field.text.startswith("__"):
            # Traits are looked up as data, never as attributes; a dunder is a probe.
            raise ExpressionError(f"'{field.text}' is not a trait name", field.offset, field.length)
        self._next()
        return self._add(Trait(scope, field.text, *self._span(token.offset)), token)

    def _call(self, name: Token) -> Node:
        self._next()
        args: list[Node] = []
        keywords: list[Keyword] = []

        def argument() -> None:
            token = self._peek
            if token.kind == "name" and self._tokens[self._position + 1].kind == "=":
                self._next()
                self._next()
                if any(keyword.name == token.text for keyword in keywords):
                    raise ExpressionError(
                        f"keyword argument '{token.text}' given twice", token.offset, token.length
                    )
                value = self._expression()
                keywords.append(Keyword(token.text, value, token.offset, token.length))
                return
            value = self._expression()
            if keywords:
                raise ExpressionError(
                    "positional argument follows keyword argument", value.offset, value.length
                )
            args.append(value)

        self._sequence(")", argument)
        call = Call(name.text, tuple(args), tuple(keywords), *self._span(name.offset))
        return self._add(call, name)

    def _sequence(self, close: str, item: Callable[[], object]) -> None:
        """Comma-separated items up to ``close``; a trailing comma is allowed."""
        while self._peek.kind != close:
            item()
            if self._peek.kind != ",":
                break
            self._next()
        self._expect(close, f"expected ',' or '{close}'")


def _literal(token: Token) -> Node:
    """Build the node for a literal token; raise for a token that cannot start one."""
    span = (token.offset, token.length)
    if token.kind in ("number", "string"):
        return Constant(token.value, *span)
    if token.kind == "duration":
        return Duration(token.value, *span)
    if token.kind in ("true", "false"):
        return Constant(token.kind == "true", *span)
    if token.kind == "null":
        return Constant(None, *span)
    raise _unexpected(token)


def _unexpected(token: Token) -> ExpressionError:
    if token.kind == "end":
        return ExpressionError("unexpected end of expression", token.offset)
    hint = "; use '==' to compare" if token.kind == "=" else ""
    return ExpressionError(f"unexpected '{token.text}'{hint}", token.offset, token.length)


def _too_deep(offset: int, length: int) -> ExpressionError:
    return ExpressionError(f"expression nests deeper than {MAX_DEPTH} levels", offset, length)
