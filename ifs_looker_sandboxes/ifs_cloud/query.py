"""OData v4 query options as IFS Cloud accepts them: `$filter`, `$orderby`, `$select`.

`$filter` is parsed into a small AST, type-checked against the entity (so an
unknown property or a literal of the wrong type gets IFS's 400), and compiled
to one Python predicate. Hostile filters get 400 too, never a crash: nesting
(parentheses, `not`, function calls) is limited to `MAX_NESTING` levels, and
long `and`/`or` chains are flat, not nested, wherever they are walked. The AST
also yields the lower bound of the leading `$orderby` field and a `Company eq`
partition, which let the store start a scan where the answer begins instead of
at the first row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from .entities import (
    BOOLEAN,
    DATE,
    DECIMAL,
    INT,
    PROJECTIONS_BY_NAME,
    STREAM,
    STRING,
    TIME_OF_DAY,
    TIMESTAMP,
    EntityType,
    EnumType,
    Prop,
)


class QueryError(ValueError):
    """A query IFS would refuse with 400; the message is IFS's own wording."""

    def __init__(self, message: str, code: str = "ODP_BAD_REQUEST") -> None:
        super().__init__(message)
        self.code = code


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<enum>[A-Za-z_][\w.]*'(?:[^']|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)

COMPARISONS = {"eq": "==", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
STRING_PREDICATES = {"contains", "startswith", "endswith"}
STRING_FUNCTIONS = {"tolower": "lower", "toupper": "upper", "trim": "strip"}
KEYWORDS = {"and", "or", "not", "true", "false", "null", *COMPARISONS, "has"}
MAX_NESTING = 50  # parentheses, `not`s and function calls inside one another
INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise QueryError(f"Syntax error at position {pos} in '{text}'.")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


# AST nodes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    kind: str  # string, enum, number, date, datetime, boolean, null
    value: object
    text: str


@dataclass(frozen=True)
class Property:
    prop: Prop


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[object, ...]


@dataclass(frozen=True)
class Compare:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class BoolOp:
    op: str  # and / or
    left: object
    right: object


@dataclass(frozen=True)
class Not:
    operand: object


class FilterParser:
    """Recursive descent over the token list; precedence: not > comparison > and > or."""

    def __init__(
        self,
        text: str,
        entity: EntityType,
        namespace: str,
        enums: dict[str, EnumType] | None = None,
    ) -> None:
        self.text = text
        self.entity = entity
        self.namespace = namespace
        self.enums = enums_of(namespace) if enums is None else enums
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    def _enter(self, levels: int = 1) -> None:
        self.depth += levels
        if self.depth > MAX_NESTING:
            raise QueryError(
                f"The $filter expression is nested more than {MAX_NESTING} levels deep."
            )

    def parse(self) -> object:
        if not self.tokens:
            raise QueryError("The $filter query option must not be empty.")
        node = self._or()
        if self.pos != len(self.tokens):
            token = self.tokens[self.pos]
            raise QueryError(f"Syntax error at position {token.pos} in '{self.text}'.")
        return node

    def _peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _word(self) -> str | None:
        token = self._peek()
        return token.text.lower() if token and token.kind == "name" else None

    def _expect(self, text: str) -> None:
        token = self._peek()
        if token is None or token.text != text:
            where = token.pos if token else len(self.text)
            raise QueryError(
                f"Syntax error: '{text}' expected at position {where} in '{self.text}'."
            )
        self.pos += 1

    def _or(self) -> object:
        node = self._and()
        while self._word() == "or":
            self.pos += 1
            node = BoolOp("or", node, self._and())
        return node

    def _and(self) -> object:
        node = self._not()
        while self._word() == "and":
            self.pos += 1
            node = BoolOp("and", node, self._not())
        return node

    def _not(self) -> object:
        nots = 0
        while self._word() == "not":
            self.pos += 1
            nots += 1
        self._enter(nots)
        node = self._comparison()
        for _ in range(nots):
            node = Not(node)
        self.depth -= nots
        return node

    def _comparison(self) -> object:
        left = self._operand()
        word = self._word()
        if word == "has":
            raise QueryError("The 'has' operator is not supported.")
        if word in COMPARISONS:
            self.pos += 1
            right = self._operand()
            return check_comparison(Compare(word, left, right), self.enums)
        return left

    def _operand(self) -> object:
        token = self._peek()
        if token is None:
            raise QueryError(f"Syntax error: unexpected end of '{self.text}'.")
        self.pos += 1
        if token.text == "(":
            self._enter()
            node = self._or()
            self._expect(")")
            self.depth -= 1
            return node
        if token.kind == "name":
            return self._name(token)
        return literal(token, self.namespace)

    def _name(self, token: Token) -> object:
        lowered = token.text.lower()
        if lowered in ("true", "false"):
            return Literal("boolean", lowered == "true", token.text)
        if lowered == "null":
            return Literal("null", None, token.text)
        following = self._peek()
        if following is not None and following.text == "(":
            return self._call(lowered)
        return Property(queryable(self.entity, token.text, self.namespace))

    def _call(self, name: str) -> object:
        if name not in STRING_PREDICATES and name not in STRING_FUNCTIONS:
            raise QueryError(f"An unknown function with name '{name}' was found.")
        self._expect("(")
        self._enter()
        args = [self._or()]
        while self._peek() is not None and self._peek().text == ",":  # type: ignore[union-attr]
            self.pos += 1
            args.append(self._or())
        self._expect(")")
        self.depth -= 1
        expected = 2 if name in STRING_PREDICATES else 1
        if len(args) != expected:
            raise QueryError(f"The function '{name}' takes {expected} argument(s).")
        return Call(name, tuple(args))


def queryable(entity: EntityType, name: str, namespace: str) -> Prop:
    """The property a query expression names, or IFS's 400 (stream properties hold no value)."""
    prop = entity.prop(name)
    if prop is None:
        raise QueryError(
            f"The property '{name}', used in a query expression, is not defined in type "
            f"'{namespace}.{entity.name}'."
        )
    if prop.type == STREAM:
        raise QueryError(
            f"The stream property '{name}' cannot be used in a query expression; "
            f"read it from its own URL."
        )
    return prop


def literal(token: Token, namespace: str) -> Literal:
    text = token.text
    if token.kind == "string":
        return Literal("string", text[1:-1].replace("''", "'"), text)
    if token.kind == "enum":
        type_name, _, quoted = text.partition("'")
        return Literal("enum", (type_name, ("'" + quoted)[1:-1].replace("''", "'")), text)
    if token.kind == "number":
        return Literal("number", text, text)
    if token.kind == "date":
        try:
            return Literal("date", date.fromisoformat(text), text)
        except ValueError as exc:
            raise QueryError(f"Invalid date literal '{text}'.") from exc
    if token.kind == "datetime":
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise QueryError(f"Invalid DateTimeOffset literal '{text}'.") from exc
        return Literal("datetime", value, text)
    if token.kind == "time":
        try:
            return Literal("time", time.fromisoformat(text), text)
        except ValueError as exc:
            raise QueryError(f"Invalid TimeOfDay literal '{text}'.") from exc
    raise QueryError(f"Syntax error at position {token.pos}: unexpected '{text}'.")


# Type checking -----------------------------------------------------------------------------------


def enums_of(namespace: str) -> dict[str, EnumType]:
    """The enum types of the projection behind `IfsApp.<Projection>`."""
    projection = PROJECTIONS_BY_NAME.get(namespace.removeprefix("IfsApp."))
    return {e.name: e for e in projection.enums} if projection else {}


def _edm(node: object) -> str:
    if isinstance(node, Property):
        return node.prop.type if not node.prop.is_enum else f"enum {node.prop.type}"
    if isinstance(node, Call):
        return "Edm.Boolean" if node.name in STRING_PREDICATES else STRING
    if isinstance(node, Literal):
        return {
            "string": STRING,
            "number": DECIMAL,
            "date": DATE,
            "datetime": TIMESTAMP,
            "time": TIME_OF_DAY,
            "boolean": BOOLEAN,
            "enum": "enum",
            "null": "null",
        }[node.kind]
    return BOOLEAN


def coerce(lit: Literal, prop: Prop, enums: dict[str, EnumType]) -> object:
    """The literal as a Python value comparable with the property, or IFS's 400."""
    if lit.kind == "null":
        return None
    mismatch = QueryError(
        f"A binary operator with incompatible types was detected. Found operand types "
        f"'{prop.type}' and '{_edm(lit)}' for property '{prop.name}'."
    )
    if prop.is_enum:
        member = lit.value[1] if lit.kind == "enum" else lit.value if lit.kind == "string" else None
        enum = enums.get(prop.type)
        if member is None:
            raise mismatch
        if enum is not None and member not in enum.members:
            raise QueryError(f"'{member}' is not a valid value of enumeration '{prop.type}'.")
        return member
    if prop.type == STRING and lit.kind == "string":
        return lit.value
    if prop.type in (DECIMAL, INT) and lit.kind == "number":
        try:
            number = Decimal(lit.text)
        except InvalidOperation as exc:
            raise mismatch from exc
        if prop.type == INT and number == number.to_integral_value() and in_int32(number):
            return int(number)
        return number  # beyond Int32 (or fractional): compared as a Decimal, matches nothing
    if prop.type == DATE and lit.kind == "date":
        return lit.value
    if prop.type == TIMESTAMP and lit.kind == "datetime":
        return lit.value
    if prop.type == TIME_OF_DAY and lit.kind == "time":
        return lit.value
    if prop.type == TIMESTAMP and lit.kind == "date":
        d = lit.value
        return datetime(d.year, d.month, d.day, tzinfo=UTC)  # type: ignore[attr-defined]
    if prop.type == BOOLEAN and lit.kind == "boolean":
        return lit.value
    raise mismatch


def check_comparison(node: Compare, enums: dict[str, EnumType]) -> Compare:
    left, right = node.left, node.right
    if isinstance(right, Property) and isinstance(left, Literal):
        left, right = right, left
        node = Compare(_MIRROR[node.op], left, right)
    if isinstance(left, Property) and isinstance(right, Literal):
        return Compare(node.op, left, Literal("value", coerce(right, left.prop, enums), right.text))
    if isinstance(left, Property) and isinstance(right, Property):
        if left.prop.type != right.prop.type:
            raise QueryError(
                f"A binary operator with incompatible types was detected. Found operand types "
                f"'{left.prop.type}' and '{right.prop.type}'."
            )
        return node
    return node


_MIRROR = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}


def in_int32(number: Decimal) -> bool:
    return INT32[0] <= number <= INT32[1]


def operands(node: object, op: str) -> list[object]:
    """The operands of a chain `a op b op c ...`, left to right, walked without recursion."""
    found: list[object] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, BoolOp) and current.op == op:
            stack.append(current.right)
            stack.append(current.left)
        else:
            found.append(current)
    return found


# Compilation -------------------------------------------------------------------------------------


class _Compiler:
    def __init__(self) -> None:
        self.constants: list[object] = []

    def const(self, value: object) -> str:
        self.constants.append(value)
        return f"c[{len(self.constants) - 1}]"

    def value(self, node: object) -> str:
        if isinstance(node, Property):
            return f"r.{node.prop.name}"
        if isinstance(node, Literal):
            if node.kind in ("value", "null"):
                return self.const(node.value)
            if node.kind in ("string", "boolean"):
                return self.const(node.value)
            if node.kind == "number":
                return self.const(Decimal(node.text))
            if node.kind == "enum":
                return self.const(node.value[1])  # type: ignore[index]
            return self.const(node.value)
        if isinstance(node, Call) and node.name in STRING_FUNCTIONS:
            inner = self.value(node.args[0])
            return f"(({inner}).{STRING_FUNCTIONS[node.name]}() if ({inner}) is not None else None)"
        return f"({self.boolean(node)})"

    def boolean(self, node: object) -> str:
        if isinstance(node, BoolOp):  # one flat chain: no nesting however long it is
            return "(" + f" {node.op} ".join(self.boolean(n) for n in operands(node, node.op)) + ")"
        if isinstance(node, Not):
            return f"(not {self.boolean(node.operand)})"
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Call) and node.name in STRING_PREDICATES:
            haystack, needle = (self.value(a) for a in node.args)
            test = {
                "contains": f"{needle} in {haystack}",
                "startswith": f"{haystack}.startswith({needle})",
                "endswith": f"{haystack}.endswith({needle})",
            }[node.name]
            return f"({haystack} is not None and {needle} is not None and {test})"
        if isinstance(node, Property) and node.prop.type == BOOLEAN:
            return f"(r.{node.prop.name} is True)"
        if isinstance(node, Literal) and node.kind == "boolean":
            return "True" if node.value else "False"
        raise QueryError("The $filter expression must evaluate to a boolean.")

    def compare(self, node: Compare) -> str:
        left, right = self.value(node.left), self.value(node.right)
        operator = COMPARISONS[node.op]
        if node.op in ("eq", "ne"):
            return f"({left} {operator} {right})"
        return f"({left} is not None and {right} is not None and {left} {operator} {right})"


Predicate = Callable[[object], bool]


def compile_filter(node: object) -> Predicate:
    compiler = _Compiler()
    source = compiler.boolean(node)
    try:
        code = compile(f"lambda r: {source}", "<$filter>", "eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
        raise QueryError("The $filter expression is too complex.") from exc
    return eval(code, {"c": compiler.constants, "__builtins__": {}})  # noqa: S307 - generated from a checked AST


def lower_bound(node: object, field: str) -> object | None:
    """A value v such that every row matching `node` has `field >= v`, or None if unknown."""
    if isinstance(node, Compare):
        bounded = (
            isinstance(node.left, Property)
            and node.left.prop.name == field
            and isinstance(node.right, Literal)
            and node.op in ("eq", "gt", "ge")
        )
        return node.right.value if bounded else None  # type: ignore[union-attr]
    if isinstance(node, BoolOp):
        bounds = [lower_bound(n, field) for n in operands(node, node.op)]
        if node.op == "and":
            candidates = [b for b in bounds if b is not None]
            return max(candidates) if candidates else None  # type: ignore[type-var]
        if any(b is None for b in bounds):
            return None
        return min(bounds)  # type: ignore[type-var]
    return None


def partition_value(node: object, field: str) -> object | None:
    """The value of a top-level `field eq value` conjunct, which pins the scan to one partition."""
    if isinstance(node, Compare) and node.op == "eq" and isinstance(node.left, Property):
        if node.left.prop.name == field and isinstance(node.right, Literal):
            return node.right.value
        return None
    if isinstance(node, BoolOp) and node.op == "and":
        for operand in operands(node, "and"):
            found = partition_value(operand, field)
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class Filter:
    """A parsed, checked and compiled `$filter`."""

    text: str
    ast: object
    predicate: Predicate


def parse_filter(
    text: str, entity: EntityType, namespace: str, enums: dict[str, EnumType] | None = None
) -> Filter:
    """`enums`: the projection's enum types (by default the built-in projection's)."""
    try:
        ast = FilterParser(text, entity, namespace, enums).parse()
    except RecursionError as exc:  # the nesting limit comes first; this is a last line
        raise QueryError("The $filter expression is too complex.") from exc
    return Filter(text, ast, compile_filter(ast))


def parse_orderby(text: str, entity: EntityType, namespace: str) -> tuple[tuple[str, bool], ...]:
    """`A asc, B desc` -> ((A, False), (B, True)); unknown properties get IFS's 400."""
    order: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise QueryError(f"Syntax error in $orderby '{text}'.")
        queryable(entity, words[0], namespace)
        order.append((words[0], len(words) == 2 and words[1] == "desc"))
    return tuple(order)


def parse_select(text: str, entity: EntityType, namespace: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise QueryError("The $select query option must not be empty.")
    for name in names:
        prop = entity.prop(name) if name != "*" else None
        if name != "*" and prop is None:
            raise QueryError(
                f"Could not find a property named '{name}' on type '{namespace}.{entity.name}'."
            )
        if prop is not None and prop.type == STREAM:
            raise QueryError(
                f"The stream property '{name}' cannot be selected; read it from its own URL."
            )
    return () if "*" in names else names


_NON_NEGATIVE = re.compile(r"[0-9]{1,18}")


def parse_non_negative(name: str, text: str) -> int:
    if not _NON_NEGATIVE.fullmatch(text):
        raise QueryError(
            f"Invalid value '{text}' for {name} query option found. "
            f"The {name} query option requires a non-negative integer value."
        )
    return int(text)
