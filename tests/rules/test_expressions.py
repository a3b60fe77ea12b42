"""The rules expression language: syntax, types, errors, bounds and run-time semantics."""

from __future__ import annotations

from typing import Any

import pytest

import pqlsdk
from pqlsdk._aggregates import Aggregate
from pqlsdk.rules._compiler import Compiled, ExpressionError, Type, compile_expression

NUMBER_VARIABLES = {"score": Type.NUMBER}


NOW = 30 * 86_400_000_000  # µs: the instant the test facts describe


def _state(aggregate: Aggregate, value: int) -> Any:
    """A stored state whose value at NOW is ``value``, shaped as the store keeps it."""
    if aggregate.tally:
        return value
    if aggregate.window is None:
        return list(range(value))  # the values (or days) seen
    if aggregate.kind == "count":
        return [NOW] * value  # the times, inside the window
    return {str(i): NOW for i in range(value)}  # the latest time per value (or day)


class Facts:
    """A subject's answers, held in plain dicts: the test data a compiled rule reads.

    ``aggregates`` gives each aggregate's value; it is stored as the state a store
    would keep for it, which is what compiled rules read.
    """

    def __init__(
        self,
        *,
        aggregates: dict[Aggregate, int] | None = None,
        user: dict[str, Any] | None = None,
        account: dict[str, Any] | None = None,
        variables: dict[str, Any] | None = None,
        last_active: float = 1.0,
        first_seen: float = 30.0,
        team: int = 1,
    ) -> None:
        states = {a: _state(a, value) for a, value in (aggregates or {}).items()}
        self.now = NOW
        self.user_aggregates = {a.key: s for a, s in states.items() if a.scope == "user"}
        self.account_aggregates = {a.key: s for a, s in states.items() if a.scope == "account"}
        self.user_traits = user or {}
        self.account_traits = account or {}
        self.variables = variables or {}
        self.days_since_last_active = last_active
        self.days_since_first_seen = first_seen
        self.team_size = team

    def variable(self, name: str) -> Any:
        return self.variables.get(name)


def evaluate(source: str, facts: Facts | None = None, **options: Any) -> Any:
    """Compile ``source`` and evaluate it against ``facts`` (no data by default)."""
    return compile_expression(source, **options).evaluate(facts or Facts())


def failure(source: str, **options: Any) -> tuple[str, int]:
    """The message and offset of the error compiling ``source`` raises."""
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source, **options)
    return caught.value.message, caught.value.offset


def aggregates(source: str, **options: Any) -> frozenset[Aggregate]:
    return compile_expression(source, **options).aggregates


def count(event: str | None = None, **spec: Any) -> Aggregate:
    return Aggregate("count", event, **spec)


# --- literals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [("3", 3), ("0.5", 0.5), ("1e3", 1000.0), ("2.5E-1", 0.25), ("007", 7)],
)
def test_number_literals(source: str, expected: float) -> None:
    """Integers, decimals and exponents read as Python numbers."""
    assert expected == evaluate(source)


def test_integer_literal_stays_an_int() -> None:
    """An integer literal without a point is an int, not a float."""
    assert int is type(evaluate("3"))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'fintech'", "fintech"),
        ('"fintech"', "fintech"),
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'a\\b'", "a\\b"),
        (r'"mixed \' quote"', "mixed ' quote"),
        ("''", ""),
    ],
)
def test_string_literals(source: str, expected: str) -> None:
    """Strings take either quote; a backslash escapes a quote or a backslash."""
    assert expected == evaluate(source)


@pytest.mark.parametrize(("source", "expected"), [("true", True), ("false", False), ("null", None)])
def test_keyword_literals(source: str, expected: Any) -> None:
    """true, false and null are the literal values."""
    assert expected == evaluate(source)


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        ("7d", 604_800),
        ("24h", 86_400),
        ("1.5h", 5_400),
        ("30m", 1_800),
        ("45s", 45),
        ("2w", 1_209_600),
        ("1.1h", 3_960),
    ],
)
def test_durations_are_whole_seconds(duration: str, seconds: int) -> None:
    """A number followed by s, m, h, d or w is a window in whole seconds, computed exactly."""
    assert frozenset({count(window=seconds)}) == aggregates(f"count(within={duration})")


def test_unsupported_escape() -> None:
    """Only quotes and backslashes may be escaped; the error points at the backslash."""
    expected = ("unsupported escape '\\n'; only \\\\, \\\" and \\' are allowed", 3)
    assert expected == failure(r'"ab\ncd"')


def test_unterminated_string() -> None:
    """A string without its closing quote is an error at the opening quote."""
    expected = ("unterminated string", 10)
    assert expected == failure('user.x == "trial')


def test_unterminated_string_ending_in_backslash() -> None:
    """A backslash cannot escape the end of the source."""
    expected = ("unterminated string", 0)
    assert expected == failure("'abc\\'")


def test_unexpected_character() -> None:
    """A character the language does not use is refused where it stands."""
    expected = ("unexpected '!'", 2)
    assert expected == failure("1 ! 2")


@pytest.mark.parametrize("duration", ["3days", "1e3d", "2x"])
def test_not_a_duration(duration: str) -> None:
    """A number followed by letters must be a duration with a known unit and no exponent."""
    expected = (f"'{duration}' is not a duration; write one like 7d or 1.5h", 13)
    assert expected == failure(f"count(within={duration})")


def test_duration_in_fractions_of_a_second() -> None:
    """Durations are whole seconds: 0.5s is refused rather than rounded."""
    expected = ("'0.5s' is not a whole number of seconds", 13)
    assert expected == failure("count(within=0.5s)")


def test_duration_too_long() -> None:
    """A window longer than ten years is a typo."""
    expected = ("durations are at most 3650d, got '3651d'", 13)
    assert expected == failure("count(within=3651d)")


def test_number_too_large() -> None:
    """A number beyond float range is refused instead of becoming infinity."""
    expected = ("'1e999' is too large", 4)
    assert expected == failure("1 + 1e999")


# --- operators and precedence ---------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("7 + 2", 9),
        ("7 - 2", 5),
        ("7 * 2", 14),
        ("7 / 2", 3.5),
        ("7 % 2", 1),
        ("-7", -7),
        ("- -7", 7),
        ("0.5 + 1", 1.5),
    ],
)
def test_arithmetic_operators(source: str, expected: float) -> None:
    """Arithmetic follows Python: / is true division, ints and floats mix."""
    assert expected == evaluate(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 == 1", True),
        ("1 == 1.0", True),
        ("1 != 2", True),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("1 > 2", False),
        ("2 >= 3", False),
        ('"apple" < "banana"', True),
        ('"a" == "a"', True),
        ("true == true", True),
        ("true != false", True),
    ],
)
def test_comparison_operators(source: str, expected: bool) -> None:
    """Numbers and strings compare and order; booleans compare for equality."""
    assert expected == evaluate(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("true and true", True),
        ("true and false", False),
        ("false or true", True),
        ("false or false", False),
        ("not true", False),
        ("not false", True),
    ],
)
def test_boolean_operators(source: str, expected: bool) -> None:
    """and, or and not on booleans."""
    assert expected == evaluate(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"b" in ["a", "b"]', True),
        ('"c" in ["a", "b"]', False),
        ('"c" not in ["a", "b"]', True),
        ('"a" not in ["a", "b"]', False),
        ("1 in []", False),
        ("2 in [1, 2,]", True),
    ],
)
def test_membership_operators(source: str, expected: bool) -> None:
    """in and not in test a value against a list literal."""
    assert expected == evaluate(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("2 * 3 % 4", 2),
        ("12 / 2 / 3", 2.0),
        ("-2 * 3", -6),
        ("-(2 + 3)", -5),
        ("1 + 2 > 2", True),
        ("not 1 == 2", True),
        ("not true or true", True),
        ("true or true and false", True),
        ("(true or true) and false", False),
        ("not true and false", False),
        ('1 in [1] and "a" not in ["b"]', True),
        ("1 if false else 2 if false else 3", 3),
        ("1 if true else 2 if false else 3", 1),
        ("1 + 1 if 2 > 1 else 0", 2),
        ("(1 if true else 2) + 10", 11),
    ],
)
def test_precedence(source: str, expected: Any) -> None:
    """Lowest to highest: if-else, or, and, not, comparisons, + -, * / %, unary -."""
    assert expected == evaluate(source)


def test_conditional_evaluates_only_the_chosen_branch() -> None:
    """a if c else b reads the facts of one branch only."""
    facts = Facts(user={"flag": True})
    expected = 1
    assert expected == evaluate("1 if user.flag else user.missing + 1", facts)


def test_chained_comparison_is_an_error() -> None:
    """a < b < c is ambiguous in this language; the error points at the second operator."""
    expected = ("comparisons cannot be chained; join them with 'and'", 6)
    assert expected == failure("1 < 2 < 3")


def test_chained_membership_is_an_error() -> None:
    """in and not in do not chain with comparisons either."""
    expected = ("comparisons cannot be chained; join them with 'and'", 9)
    assert expected == failure("1 in [1] not in [true]")


# --- names and traits -----------------------------------------------------------------


def test_user_and_account_traits() -> None:
    """user.<name> and account.<name> read the subject's and its account's traits."""
    facts = Facts(user={"plan": "trial"}, account={"plan": "paid"})
    expected = [True, True]
    actual = [evaluate('user.plan == "trial"', facts), evaluate('account.plan == "paid"', facts)]
    assert expected == actual


def test_trait_named_like_a_keyword() -> None:
    """After user. or account. a keyword is just a trait name."""
    assert True is evaluate('account.if == "x"', Facts(account={"if": "x"}))


def test_variables_are_read_from_facts() -> None:
    """A declared variable is a name the expression may use, with its declared type."""
    compiled = compile_expression("score * 2", variables=NUMBER_VARIABLES)
    expected = (Type.NUMBER, 84)
    assert expected == (compiled.type, compiled.evaluate(Facts(variables={"score": 42})))


def test_unknown_name_suggests_a_variable() -> None:
    """A misspelt variable gets a suggestion."""
    expected = ("unknown name 'scor'; did you mean 'score'?", 0)
    assert expected == failure("scor > 1", variables=NUMBER_VARIABLES)


def test_unknown_name_suggests_a_literal() -> None:
    """Python spellings of the literals point to this language's."""
    expected = ("unknown name 'True'; did you mean 'true'?", 10)
    assert expected == failure("user.x == True")


def test_unknown_name_without_a_suggestion() -> None:
    """With nothing close, the error just names the name."""
    expected = ("unknown name 'plan'", 0)
    assert expected == failure('plan == "trial"')


def test_function_used_as_a_name() -> None:
    """A function name without parentheses says how to call it."""
    expected = ("'team_size' is a function; call it like team_size(...)", 0)
    assert expected == failure("team_size >= 3")


def test_bare_user_needs_a_trait() -> None:
    """user alone is not a value."""
    expected = ("'user' needs a trait name, like user.plan", 0)
    assert expected == failure("user == 1")


def test_trait_name_must_follow_the_dot() -> None:
    """account. must be followed by a trait name."""
    expected = ("expected a trait name after 'account.'", 8)
    assert expected == failure("account.1")


def test_dot_only_follows_user_or_account() -> None:
    """Nothing else has fields: a dotted variable is refused at the dot."""
    expected = ("'.' can only follow 'user' or 'account'", 5)
    assert expected == failure("score.x", variables=NUMBER_VARIABLES)


# --- functions and aggregates ---------------------------------------------------------


def test_count_any_event() -> None:
    """count() with no event counts every track, without a window."""
    assert frozenset({count()}) == aggregates("count() >= 1")


def test_count_with_filters_and_window() -> None:
    """Every keyword but within= is a property filter; where is sorted by name."""
    expected = count("page_viewed", where=(("path", "/pricing"), ("plan", "pro")), window=604_800)
    source = 'count("page_viewed", plan="pro", path="/pricing", within=7d)'
    assert frozenset({expected}) == aggregates(source)


def test_count_filters_on_numbers_and_booleans() -> None:
    """Filter values may be numbers and booleans, including folded constants like -1."""
    expected = count("upgraded", where=(("paid", True), ("seats", -1)))
    assert frozenset({expected}) == aggregates('count("upgraded", seats=-1, paid=true)')


def test_distinct_spec() -> None:
    """distinct(event, property) counts distinct values of the property."""
    expected = Aggregate("distinct", "feature_used", field="feature", window=1_209_600)
    assert frozenset({expected}) == aggregates('distinct("feature_used", "feature", within=14d)')


def test_active_days_spec() -> None:
    """active_days(within=...) counts distinct active days."""
    expected = Aggregate("active_days", window=1_209_600)
    assert frozenset({expected}) == aggregates("active_days(within=14d) >= 5")


def test_scope_is_written_into_every_aggregate() -> None:
    """An account model's aggregates read every member's events."""
    expected = frozenset({count("a", scope="account"), Aggregate("active_days", scope="account")})
    assert expected == aggregates('count("a") + active_days()', scope="account")


def test_aggregates_are_listed_once() -> None:
    """The same aggregate read several times is listed once."""
    source = "count(within=7d) - (count(within=14d) - count(within=7d))"
    assert frozenset({count(window=604_800), count(window=1_209_600)}) == aggregates(source)


def test_aggregate_values_come_from_facts() -> None:
    """An aggregate call asks Facts for the spec built at compile time."""
    facts = Facts(aggregates={count("a"): 4, Aggregate("active_days", window=604_800): 2})
    expected = 6
    assert expected == evaluate('count("a") + active_days(within=7d)', facts)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('count("a") >= 3', True),
        ('count("a") >= 4', False),
        ('count("b") == 0', True),
        ('count("a") + count("b")', 3),
        ('distinct("f", "x") >= 2', True),
    ],
)
def test_account_aggregates_are_read_from_the_account(source: str, expected: Any) -> None:
    """An account model's counts (alone or compared with a literal) read the account's states."""
    facts = Facts(
        aggregates={
            count("a", scope="account"): 3,
            count("a"): 99,  # the user's own count of "a": not the account's
            Aggregate("distinct", "f", field="x", scope="account"): 2,
        }
    )
    assert expected == evaluate(source, facts, scope="account")


def test_subject_functions() -> None:
    """days_since_last_active(), days_since_first_seen() and team_size() ask Facts."""
    facts = Facts(last_active=2.5, first_seen=40.0, team=4)
    source = "days_since_last_active() + days_since_first_seen() + team_size()"
    expected = 46.5
    assert expected == evaluate(source, facts)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("min(3, 1, 2)", 1),
        ("max(3, 1.5)", 3),
        ("clamp(5, 0, 1)", 1),
        ("clamp(-5, 0, 1)", 0),
        ("clamp(0.25, 0, 1)", 0.25),
        ("abs(-2.5)", 2.5),
    ],
)
def test_numeric_functions(source: str, expected: float) -> None:
    """min, max, clamp and abs."""
    assert expected == evaluate(source)


def test_numeric_functions_on_facts() -> None:
    """Numeric functions work on values only known at run time."""
    expected = 3
    assert expected == evaluate("max(team_size(), user.seats)", Facts(team=3, user={"seats": 2}))


def test_unknown_function_suggests() -> None:
    """A misspelt function gets a suggestion; the error covers its name."""
    with pytest.raises(ExpressionError) as caught:
        compile_expression('cout("a") >= 1')
    error = caught.value
    expected = ("unknown function 'cout'; did you mean 'count'?", 0, 4)
    assert expected == (str(error), error.offset, error.length)


def test_unknown_function_without_a_suggestion() -> None:
    """With nothing close, the error just names the function."""
    expected = ("unknown function 'sqrt'", 0)
    assert expected == failure("sqrt(4)")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('count("a", "b")', ("count() takes at most 1 positional argument (2 given)", 11)),
        ('distinct("a")', ("distinct() takes 2 positional arguments (1 given)", 0)),
        ("active_days(7)", ("active_days() takes 0 positional arguments (1 given)", 12)),
        ("team_size(1)", ("team_size() takes 0 positional arguments (1 given)", 10)),
        ("abs(1, 2)", ("abs() takes 1 positional argument (2 given)", 7)),
        ("clamp(1, 2)", ("clamp() takes 3 positional arguments (2 given)", 0)),
        ("clamp(1, 2, 3, 4)", ("clamp() takes 3 positional arguments (4 given)", 15)),
        ("min(1)", ("min() needs at least 2 arguments", 0)),
        ("max()", ("max() needs at least 2 arguments", 0)),
    ],
)
def test_wrong_arity(source: str, expected: tuple[str, int]) -> None:
    """Too many arguments point at the first extra one; too few at the call."""
    assert expected == failure(source)


def test_unexpected_keyword_suggests() -> None:
    """A function without filters refuses unknown keywords, suggesting a close one."""
    expected = (
        "active_days() got an unexpected keyword argument 'withn'; did you mean 'within'?",
        12,
    )
    assert expected == failure("active_days(withn=7d)")


def test_unexpected_keyword_on_a_numeric_function() -> None:
    """Numeric functions take no keywords at all."""
    expected = ("min() got an unexpected keyword argument 'x'", 10)
    assert expected == failure("min(1, 2, x=1)")


def test_duplicate_keyword() -> None:
    """A keyword given twice is an error at its second occurrence."""
    expected = ("keyword argument 'within' given twice", 17)
    assert expected == failure("count(within=7d, within=14d)")


def test_positional_after_keyword() -> None:
    """Positional arguments come first."""
    expected = ("positional argument follows keyword argument", 17)
    assert expected == failure('count(within=7d, "a")')


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("count(3)", ("count() needs the event name as a quoted string, got number", 6)),
        ("count(user.event)", ("count() needs the event name as a quoted string, got any", 6)),
        ('count("")', ("count() needs the event name as a quoted string, got an empty string", 6)),
        (
            'distinct("a", true)',
            ("distinct() needs the property name as a quoted string, got bool", 14),
        ),
    ],
)
def test_aggregate_names_are_string_literals(source: str, expected: tuple[str, int]) -> None:
    """Event and property names must be known when the rule compiles."""
    assert expected == failure(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("count(within=7)", ("within= needs a duration like 7d, got number", 13)),
        ("count(within=[7d])", ("within= needs a duration like 7d, got list", 13)),
        ("count(within=0d)", ("within= needs a duration longer than zero", 13)),
    ],
)
def test_within_needs_a_positive_duration(source: str, expected: tuple[str, int]) -> None:
    """within= takes a duration literal above zero."""
    assert expected == failure(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            'count("a", plan=user.plan)',
            ("plan= needs a string, number or bool literal, got any", 16),
        ),
        ('count("a", plan=null)', ("plan= needs a string, number or bool literal, got null", 16)),
        ('count("a", plan=["x"])', ("plan= needs a string, number or bool literal, got list", 16)),
        (
            'count("a", withn=7d)',
            (
                "withn= needs a string, number or bool literal, got duration;"
                " did you mean 'within'?",
                17,
            ),
        ),
        ('count("a", path=7d)', ("path= needs a string, number or bool literal, got duration", 16)),
    ],
)
def test_filter_values_are_literals(source: str, expected: tuple[str, int]) -> None:
    """Filters compare a property with a constant; a duration hints at within=."""
    assert expected == failure(source)


def test_numeric_function_argument_types() -> None:
    """min, max, clamp and abs need numbers."""
    expected = ("min() needs numbers, got string", 7)
    assert expected == failure('min(1, "a")')


# --- type errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"a" + 1', ("'+' needs numbers, got string and number", 0)),
        ("1 * true", ("'*' needs numbers, got number and bool", 0)),
        ("2 + (1 - null)", ("'-' needs numbers, got number and null", 5)),
        ('-"a"', ("'-' needs a number, got string", 1)),
        ("1 and true", ("'and' needs booleans, got number", 0)),
        ('true or "yes"', ("'or' needs booleans, got string", 8)),
        ("not 1", ("'not' needs a boolean, got number", 4)),
        ('1 == "1"', ("cannot compare number with string", 0)),
        ('1 < "1"', ("cannot compare number with string", 0)),
        ("true < false", ("'<' needs numbers or strings, got bool", 0)),
        ("null < 1", ("null can only be compared with == or !=", 0)),
        ('"a" in "abc"', ("'in' needs a list on the right, got string", 7)),
        ("1 if 1 else 2", ("'if' needs a boolean condition, got number", 5)),
        (
            '1 if true else "a"',
            ("both branches of 'if' must have the same type, got number and string", 0),
        ),
        ("[1, 2]", ("a list can only be used after 'in'", 0)),
        ("1 in [user.x]", ("list items must be literals", 6)),
        ("1 in [[1]]", ("a list can only be used after 'in'", 6)),
    ],
)
def test_type_errors(source: str, expected: tuple[str, int]) -> None:
    """Operators check their operands' types when the rule compiles."""
    assert expected == failure(source)


@pytest.mark.parametrize("source", ["7d > 1", "1 == 7d", "7d + 1", "7d"])
def test_durations_only_appear_as_within(source: str) -> None:
    """A duration is a window length, never a value to compare or compute with."""
    expected = "a duration like 7d can only be a within= value"
    assert expected == failure(source)[0]


def test_duration_variable_cannot_be_ordered() -> None:
    """A variable declared as a duration cannot be compared either."""
    expected = ("'>' needs numbers or strings, got duration", 0)
    assert expected == failure("wait > 1", variables={"wait": Type.DURATION})


def test_list_variable_cannot_be_compared() -> None:
    """A list is only a right-hand side of in."""
    expected = ("cannot compare list with string", 0)
    assert expected == failure('tiers == "hot"', variables={"tiers": Type.LIST})


def test_list_variable_cannot_be_a_member() -> None:
    """A list cannot be looked up in a list."""
    expected = ("'in' needs a number, string or bool on the left, got list", 0)
    assert expected == failure('tiers in ["hot"]', variables={"tiers": Type.LIST})


def test_traits_type_check_against_anything() -> None:
    """A trait is ANY: it may meet numbers, strings, booleans and lists."""
    source = 'user.a + 1 > 2 and user.b == "x" and user.c and user.d in ["y"] and 1 in user.e'
    assert compile_expression(source).type == Type.BOOL


def test_expected_type_mismatch() -> None:
    """expect= names the required result type; the error covers the whole expression."""
    with pytest.raises(ExpressionError) as caught:
        compile_expression("count() + 1", expect=Type.BOOL)
    error = caught.value
    expected = ("expected a bool expression, got number", 0, 11)
    assert expected == (error.message, error.offset, error.length)


@pytest.mark.parametrize(
    ("source", "expect"),
    [
        ("user.plan", Type.BOOL),
        ("count() >= 1", Type.BOOL),
        ("0.5", Type.NUMBER),
        ('"x"', Type.ANY),
    ],
)
def test_expected_type_accepted(source: str, expect: Type) -> None:
    """The expected type, or an ANY result, or an ANY expectation, compiles."""
    assert source == compile_expression(source, expect=expect).source


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 if true else null", Type.NUMBER),
        ('null if true else "a"', Type.STRING),
        ("user.x if true else 1", Type.ANY),
        ("1 if true else user.x", Type.ANY),
    ],
)
def test_conditional_branch_types(source: str, expected: Type) -> None:
    """null fits either branch; a trait branch makes the result ANY."""
    assert expected == compile_expression(source).type


def test_errors_are_config_errors() -> None:
    """ExpressionError is a pqlsdk ConfigError (and a ValueError), so setup code catches it."""
    with pytest.raises(ExpressionError) as caught:
        compile_expression("1 +")
    expected = (True, True)
    actual = (isinstance(caught.value, pqlsdk.ConfigError), isinstance(caught.value, ValueError))
    assert expected == actual


# --- syntax errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("(1 + 2", ("expected ')'", 6)),
        ("min(1 2)", ("expected ',' or ')'", 6)),
        ("1 in [1 2]", ("expected ',' or ']'", 8)),
        ("1 if true", ("expected 'else'", 9)),
        ("1 2", ("unexpected '2'", 2)),
        ("1 +", ("unexpected end of expression", 3)),
        ("* 2", ("unexpected '*'", 0)),
        ("1 not 2", ("unexpected 'not'", 2)),
        ('user.plan = "trial"', ("unexpected '='; use '==' to compare", 10)),
        ("", ("expression is empty", 0)),
        ("   ", ("expression is empty", 0)),
    ],
)
def test_syntax_errors(source: str, expected: tuple[str, int]) -> None:
    """Syntax errors say what was expected or unexpected, and where."""
    assert expected == failure(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('__import__("os")', ("unknown function '__import__'", 0)),
        ('eval("1")', ("unknown function 'eval'", 0)),
        ("user.__class__", ("'__class__' is not a trait name", 5)),
        ("account.__dict__", ("'__dict__' is not a trait name", 8)),
        ("().__class__", ("unexpected ')'", 1)),
        ('"".join(["a"])', ("'.' can only follow 'user' or 'account'", 2)),
        ("(1).real", ("'.' can only follow 'user' or 'account'", 3)),
        ("count.__globals__", ("'.' can only follow 'user' or 'account'", 5)),
        ("user.plan.__class__", ("'.' can only follow 'user' or 'account'", 9)),
        ("lambda: 1", ("unexpected ':'", 6)),
        ("[x for x in y]", ("expected ',' or ']'", 3)),
    ],
)
def test_code_is_never_reachable(source: str, expected: tuple[str, int]) -> None:
    """Imports, attribute access and Python syntax are refused: rules are data."""
    assert expected == failure(source)


# --- bounds ---------------------------------------------------------------------------


def test_source_length_limit() -> None:
    """Sources over 2000 characters are refused, pointing just past the limit."""
    source = "1 + " * 500 + "1"
    expected = ("expression is longer than 2000 characters", 2000)
    assert expected == failure(source)


def test_nesting_limit_for_parentheses() -> None:
    """40 nested parentheses give the depth error at the first too-deep token."""
    source = "(" * 40 + "1" + ")" * 40
    expected = ("expression nests deeper than 32 levels", 32)
    assert expected == failure(source)


def test_nesting_at_the_limit_compiles() -> None:
    """31 parentheses around a literal make 32 levels, which is allowed."""
    expected = 1
    assert expected == evaluate("(" * 31 + "1" + ")" * 31)


def test_very_deep_input_does_not_recurse() -> None:
    """900 nested parentheses stop at the limit instead of exhausting the stack."""
    source = "(" * 900 + "1" + ")" * 900
    expected = ("expression nests deeper than 32 levels", 32)
    assert expected == failure(source)


@pytest.mark.parametrize(("operator", "width"), [("-", 1), ("not ", 4)])
def test_nesting_limit_for_unary_operators(operator: str, width: int) -> None:
    """Repeated unary operators nest too."""
    source = operator * 40 + "1"
    assert ("expression nests deeper than 32 levels", 32 * width) == failure(source)


def test_nesting_limit_for_long_chains() -> None:
    """a + b + ... builds a tree one level deeper per operator; the 32nd one crosses."""
    source = "+".join(["1"] * 40)
    expected = ("expression nests deeper than 32 levels", 63)
    assert expected == failure(source)


def test_nesting_limit_for_conditionals() -> None:
    """An if-else whose branch is already 32 levels deep crosses the limit at 'if'."""
    branch = "+".join(["1"] * 32)
    expected = ("expression nests deeper than 32 levels", len(branch) + 1)
    assert expected == failure(f"{branch} if true else 0")


def test_node_limit() -> None:
    """More than 500 nodes are refused, at the node that crosses the limit."""
    source = "[" + "1," * 600 + "1]"
    expected = ("expression has more than 500 parts", 1001)
    assert expected == failure(source)


# --- run-time semantics ---------------------------------------------------------------


def test_missing_trait_is_null() -> None:
    """A trait the subject does not have equals null."""
    facts = Facts()
    expected = [True, False, None]
    actual = [
        evaluate(source, facts)
        for source in ("user.plan == null", "user.plan != null", "user.plan")
    ]
    assert expected == actual


def test_present_trait_is_not_null() -> None:
    """null tests see a present trait."""
    facts = Facts(user={"plan": "trial"})
    expected = [False, True]
    actual = [evaluate("null == user.plan", facts), evaluate("null != user.plan", facts)]
    assert expected == actual


def test_null_literals_compare_equal() -> None:
    """null == null holds, as a constant."""
    assert True is evaluate("null == null")


@pytest.mark.parametrize(
    "source",
    [
        "user.x > 1",
        "user.x <= 1",
        "user.x == 1",
        "user.x != 1",
        'user.x != "a"',
        "user.x == user.y",
        "1 < user.x",
        "user.x > team_size()",
    ],
)
def test_comparisons_with_null_are_false(source: str) -> None:
    """Any comparison with a missing value is false, except against null itself."""
    assert False is evaluate(source)


@pytest.mark.parametrize(
    ("source", "user"),
    [
        ("user.x < 5", {"x": "abc"}),
        ("user.x >= user.y", {"x": "abc", "y": 1}),
        ('user.x == "1"', {"x": 1}),
        ("user.x != 1", {"x": "1"}),
        ("user.x == user.y", {"x": [1], "y": [1]}),
        ("user.x > count()", {"x": "3"}),
        ("count() <= user.x", {"x": True}),
    ],
)
def test_comparisons_of_incompatible_values_are_false(source: str, user: dict[str, Any]) -> None:
    """Values of different kinds never compare, in either direction."""
    assert False is evaluate(source, Facts(user=user))


@pytest.mark.parametrize(
    ("source", "user", "expected"),
    [
        ("user.flag == 1", {"flag": True}, False),
        ("user.flag != 0", {"flag": False}, False),
        ("user.n == true", {"n": 1}, False),
        ("user.flag == true", {"flag": True}, True),
        ("user.flag == user.one", {"flag": True, "one": 1}, False),
        ("user.n == 1", {"n": 1.0}, True),
        ("user.a == user.b", {"a": "x", "b": "x"}, True),
        ("user.a < user.b", {"a": 1, "b": 2.5}, True),
        ('user.name >= "m"', {"name": "zoe"}, True),
    ],
)
def test_runtime_equality_is_strict_about_kinds(
    source: str, user: dict[str, Any], expected: bool
) -> None:
    """A bool is never equal to a number; ints and floats compare by value."""
    assert expected == evaluate(source, Facts(user=user))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('count("a") > count("b")', True),
        ('count("a") == 3', True),
        ('3 == count("a")', True),
        ('1 < count("b")', False),
        ("user.seats >= team_size()", True),
        ('user.seats > count("a")', False),
        ('count("a") == user.seats', True),
        ("user.seats == 3", True),
    ],
)
def test_comparisons_between_facts_and_traits(source: str, expected: bool) -> None:
    """Comparisons read both sides from facts, whichever side a constant is on."""
    facts = Facts(aggregates={count("a"): 3, count("b"): 1}, user={"seats": 3}, team=2)
    assert expected == evaluate(source, facts)


@pytest.mark.parametrize(
    ("source", "user"),
    [
        ("user.x + 1", {}),
        ("user.x * 2", {"x": "3"}),
        ("user.x - 1", {"x": True}),
        ("-user.x", {"x": "3"}),
        ("1 / user.x", {"x": 0}),
        ("5 % user.x", {"x": 0}),
        ("user.x * 1.5", {"x": 10**400}),
        ("score + 1", {}),
    ],
)
def test_bad_arithmetic_is_null(source: str, user: dict[str, Any]) -> None:
    """Arithmetic on null or non-numbers, division by zero and overflow give null."""
    assert None is evaluate(source, Facts(user=user), variables=NUMBER_VARIABLES)


def test_division_by_zero_constant_is_null() -> None:
    """Constant folding follows the run-time rule: 1 / 0 is null, not a compile crash."""
    assert None is evaluate("1 / 0")


def test_comparison_with_folded_null_is_false() -> None:
    """A comparison against a constant that folded to null is false."""
    assert False is evaluate("user.x < 1 / 0", Facts(user={"x": 0}))


def test_negation_of_a_trait() -> None:
    """Unary minus works on a numeric trait."""
    expected = -3
    assert expected == evaluate("-user.x", Facts(user={"x": 3}))


@pytest.mark.parametrize(
    "source", ["min(user.x, 1)", "max(1, user.x)", "clamp(user.x, 0, 1)", "abs(user.x)"]
)
def test_numeric_functions_with_null_are_null(source: str) -> None:
    """min, max, clamp and abs of a missing value are null."""
    assert None is evaluate(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("user.flag and true", False),
        ("true and user.flag", False),
        ("user.flag or true", True),
        ("user.flag or false", False),
        ("not user.flag", True),
        ("user.yes and user.yes", True),
        ("user.yes or user.flag", True),
        ("not user.yes", False),
        ("user.one and true", False),
        ("1 if user.flag else 2", 2),
        ("1 if user.one else 2", 2),
        ("1 if user.yes else 2", 1),
    ],
)
def test_only_true_is_true(source: str, expected: Any) -> None:
    """and, or, not and if treat null and any non-true value as false."""
    facts = Facts(user={"yes": True, "one": 1})
    assert expected == evaluate(source, facts)


def test_boolean_operators_return_booleans() -> None:
    """and / or give true or false, never the operand's value."""
    expected = [False, False]
    assert expected == [evaluate("user.x and true"), evaluate("user.x or user.y")]


@pytest.mark.parametrize(
    ("source", "value", "expected"),
    [
        ("user.x in [1, 2]", None, False),
        ("user.x not in [1, 2]", None, False),
        ("user.x in [1, 2]", True, False),
        ("user.x in [true]", True, True),
        ("user.x in [true]", 1, False),
        ("user.x in [1, 2]", 1.0, True),
        ('user.x in ["a", null]', None, False),
        ('user.x in ["a", null]', "a", True),
        ("user.x not in [1, 2]", 3, True),
        ("user.x in [1]", [1], False),
    ],
)
def test_membership_semantics(source: str, value: Any, expected: bool) -> None:
    """in matches kinds strictly; a missing value is in no list and not out of any."""
    assert expected == evaluate(source, Facts(user={"x": value}))


@pytest.mark.parametrize(
    ("source", "roles", "expected"),
    [
        ('"admin" in user.roles', ["viewer", "admin"], True),
        ('"admin" in user.roles', ["viewer"], False),
        ('"admin" not in user.roles', ["viewer"], True),
        ('"admin" not in user.roles', ["admin"], False),
        ('"admin" in user.roles', None, False),
        ('"admin" not in user.roles', "admin", False),
        ("1 in user.roles", [True], False),
        ("user.missing in user.roles", ["x"], False),
    ],
)
def test_membership_in_a_trait(source: str, roles: Any, expected: bool) -> None:
    """The right side of in may be a list-valued trait; anything else is no list."""
    assert expected == evaluate(source, Facts(user={"roles": roles}))


def test_membership_in_a_list_variable() -> None:
    """A variable declared as a list can be the right side of in."""
    facts = Facts(variables={"tier": "hot", "allowed": ("hot", "burning")})
    variables = {"tier": Type.STRING, "allowed": Type.LIST}
    assert True is evaluate("tier in allowed", facts, variables=variables)


def test_constant_expressions_fold() -> None:
    """Constant sub-expressions are computed once, when the rule compiles."""
    expected = (Type.NUMBER, 7)
    assert expected == (compile_expression("1 + 2 * 3").type, evaluate("1 + 2 * 3"))


def test_compiled_keeps_its_source() -> None:
    """Compiled carries the source and result type for the caller to report."""
    compiled = compile_expression("count() >= 1")
    expected = ("count() >= 1", Type.BOOL)
    assert expected == (compiled.source, compiled.type)


# --- the models' expressions ----------------------------------------------------------


FEATURES = Aggregate("distinct", "feature_used", field="feature")
LAST_7 = count(window=604_800)
LAST_14 = count(window=1_209_600)
RECENCY = "1.0 if days_since_last_active() <= 7 else 0.5 if days_since_last_active() <= 30 else 0.1"
VELOCITY = (
    "clamp(0.5 + (count(within=7d) - (count(within=14d) - count(within=7d)))"
    " / max(count(within=14d) - count(within=7d), 1) / 2, 0, 1)"
)


@pytest.mark.parametrize(
    ("source", "variables", "facts", "expected"),
    [
        (
            'count("core_workflow_completed") >= 1',
            {},
            Facts(aggregates={count("core_workflow_completed"): 1}),
            True,
        ),
        ('count("core_workflow_completed") >= 1', {}, Facts(), False),
        (
            RECENCY,
            {},
            Facts(last_active=7.0),
            1.0,
        ),
        (
            RECENCY,
            {},
            Facts(last_active=30.0),
            0.5,
        ),
        (
            RECENCY,
            {},
            Facts(last_active=float("inf")),
            0.1,
        ),
        (
            'count("page_viewed", path="/pricing") >= 3',
            {},
            Facts(aggregates={count("page_viewed", where=(("path", "/pricing"),)): 3}),
            True,
        ),
        ('distinct("feature_used", "feature") >= 3', {}, Facts(aggregates={FEATURES: 2}), False),
        ("account.employees >= 100", {}, Facts(account={"employees": 250}), True),
        ("account.employees >= 100", {}, Facts(), False),
        (
            'account.industry in ["fintech", "healthcare"]',
            {},
            Facts(account={"industry": "fintech"}),
            True,
        ),
        (
            'account.industry in ["fintech", "healthcare"]',
            {},
            Facts(account={"industry": "retail"}),
            False,
        ),
        (
            'min(distinct("feature_used", "feature") / 5, 1)',
            {},
            Facts(aggregates={FEATURES: 2}),
            0.4,
        ),
        ('min(distinct("feature_used", "feature") / 5, 1)', {}, Facts(aggregates={FEATURES: 9}), 1),
        (
            VELOCITY,
            {},
            Facts(aggregates={LAST_7: 6, LAST_14: 10}),
            0.75,
        ),
        (
            VELOCITY,
            {},
            Facts(aggregates={LAST_7: 9, LAST_14: 9}),
            1,
        ),
        (
            'count("import_started") - count("import_completed") >= 2',
            {},
            Facts(aggregates={count("import_started"): 3, count("import_completed"): 1}),
            True,
        ),
        (
            "score >= 76 and account.employees >= 100",
            {"score": Type.NUMBER},
            Facts(variables={"score": 80}, account={"employees": 100}),
            True,
        ),
        (
            "score >= 76 and account.employees >= 100",
            {"score": Type.NUMBER},
            Facts(variables={"score": 75.5}, account={"employees": 100}),
            False,
        ),
        (
            'tier in ["hot", "burning"]',
            {"tier": Type.STRING},
            Facts(variables={"tier": "burning"}),
            True,
        ),
        (
            'tier in ["hot", "burning"]',
            {"tier": Type.STRING},
            Facts(variables={"tier": "warm"}),
            False,
        ),
    ],
)
def test_model_expressions(
    source: str, variables: dict[str, Type], facts: Facts, expected: Any
) -> None:
    """The expressions the domain's scoring models need compile and evaluate exactly."""
    compiled: Compiled = compile_expression(source, variables=variables)
    assert expected == compiled.evaluate(facts)


def test_velocity_model_reads_two_windows() -> None:
    """The velocity expression needs exactly the 7- and 14-day track counts."""
    assert frozenset({LAST_7, LAST_14}) == aggregates(VELOCITY, expect=Type.NUMBER)
