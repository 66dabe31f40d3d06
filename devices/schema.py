"""A small declarative validator for nested tables read from TOML: each field states what it expects
(the words an error shows) and a predicate that checks it. Standard library only, so it travels with
devices/ to a bare device environment.

Errors name the file and the dotted key: "cpu.toml: field 'repetitions.min_seconds' must be a number
>= 0 (seconds), got str '2s'", "cpu.toml: missing field 'precisions': expected ...", "cpu.toml:
unknown field(s) 'colour'; allowed: ...".
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Union


@dataclass(frozen=True)
class Value:
    """A leaf field."""

    expected: str
    valid: Callable[[Any], bool]
    required: bool = True


@dataclass(frozen=True)
class Table:
    """A table with a fixed set of keys; any other key is an error."""

    fields: dict[str, Node]
    expected: str
    required: bool = True
    nonempty: bool = False


@dataclass(frozen=True)
class MapOf:
    """A table of free keys (task names, option names) whose values all follow one Value."""

    values: Value
    expected: str
    required: bool = True
    must_have: tuple[str, ...] = ()


Node = Union[Value, Table, MapOf]


@dataclass(frozen=True)
class Rule:
    """A condition across fields, checked once every field is valid; `key` is the field it blames."""

    key: str
    expected: Callable[[dict], str]
    holds: Callable[[dict], bool]


class _Validator:
    def __init__(self, source: object, error: type[Exception]):
        self.source, self.error = source, error

    def missing(self, key: str, expected: str) -> Exception:
        return self.error(f"{self.source}: missing field '{key}': expected {expected}")

    def wrong(self, key: str, expected: str, value: Any) -> Exception:
        return self.error(f"{self.source}: field '{key}' must be {expected}, got {type(value).__name__} {value!r}")

    def node(self, node: Node, value: Any, key: str) -> None:
        if isinstance(node, Value):
            if not node.valid(value):
                raise self.wrong(key, node.expected, value)
            return
        if not isinstance(value, dict):
            raise self.wrong(key, node.expected, value)
        if isinstance(node, Table):
            self.table(node.fields, value, key + ".")
            if node.nonempty and not value:
                raise self.wrong(key, node.expected, value)
            return
        for name in node.must_have:
            if name not in value:
                raise self.missing(f"{key}.{name}", node.values.expected)
        for name, item in value.items():
            self.node(node.values, item, f"{key}.{name}")

    def table(self, fields: dict[str, Node], data: dict, prefix: str = "") -> None:
        extra = sorted(set(data) - set(fields))
        if extra:
            names = ", ".join(f"'{prefix}{k}'" for k in extra)
            raise self.error(f"{self.source}: unknown field(s) {names}; allowed: {', '.join(sorted(fields))}")
        for name, node in fields.items():
            if name in data:
                self.node(node, data[name], prefix + name)
            elif node.required:
                raise self.missing(prefix + name, node.expected)


def lookup(data: dict, key: str, default: Any = None) -> Any:
    """data["a"]["b"] for key "a.b"; `default` where a part is absent."""
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return default
        data = data[part]
    return data


def validate(data: dict, fields: dict[str, Node], rules: Iterable[Rule], source: object,
             error: type[Exception] = ValueError) -> None:
    """Raise `error` naming `source` and the first offending key unless `data` follows `fields` and `rules`."""
    validator = _Validator(source, error)
    validator.table(fields, data)
    for rule in rules:
        value = lookup(data, rule.key)
        if value is not None and not rule.holds(data):
            raise validator.wrong(rule.key, rule.expected(data), value)


# --- predicates ----------------------------------------------------------------------------------------


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def int_at_least(minimum: int) -> Callable[[Any], bool]:
    return lambda value: is_int(value) and value >= minimum


def is_text(value: Any) -> bool:
    """A non-blank string."""
    return isinstance(value, str) and bool(value.strip())


def one_of(options: Iterable[str]) -> Callable[[Any], bool]:
    allowed = frozenset(options)
    return lambda value: isinstance(value, str) and value in allowed


def distinct_list(item: Callable[[Any], bool], nonempty: bool = False) -> Callable[[Any], bool]:
    def valid(value: Any) -> bool:
        return (isinstance(value, list) and (bool(value) or not nonempty) and all(item(v) for v in value)
                and len(set(value)) == len(value))
    return valid
