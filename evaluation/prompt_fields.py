"""The checked fields of one prompt set record: each problem is a `DatasetError` naming the
file, the line (or the JSON list's item) and the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

ROLES = ("system", "developer", "user", "assistant")

MISSING: Any = object()  # a field the record does not have (None is a value: JSON's null)
_LOOKUP: Any = object()  # `Record.string`'s value not given: the record's field
_KINDS: dict[type, str] = {str: "strings", dict: "objects"}
_KIND: dict[type, str] = {str: "a string", dict: "an object"}


class DatasetError(ValueError):
    """A prompt set that cannot be used as it is, e.g.
    `questions.jsonl:3: turns: expected a list of 2 strings, got 1`."""


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Record:
    """One record of a prompt set and where it is (`file:line` or `file: item N`)."""

    where: str
    data: dict[str, Any]

    @classmethod
    def of(cls, where: str, data: Any) -> Record:
        """The record at `where`, which must be a JSON object."""
        if not isinstance(data, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {_type_name(data)}")
        return cls(where, data)

    def fail(self, field: str | None, problem: str) -> NoReturn:
        """Stop reading: `problem` with `field` of this record."""
        raise DatasetError(
            f"{self.where}: {field}: {problem}" if field else f"{self.where}: {problem}"
        )

    def string(self, field: str, value: Any = _LOOKUP) -> str:
        """The non-empty string `field` (or `value`, when given: a nested field), as read."""
        if value is _LOOKUP:
            value = self.data.get(field, MISSING)
        if value is MISSING:
            self.fail(field, "missing (expected a non-empty string)")
        if not isinstance(value, str):
            self.fail(field, f"expected a non-empty string, got {_type_name(value)}")
        if not value.strip():
            self.fail(field, "expected a non-empty string, got an empty one")
        # kept as read: AlpacaEval's judges match outputs to their instruction, byte for byte
        return value

    def optional_string(self, field: str) -> str | None:
        """The string `field`, None when the record has no such field (or it is null)."""
        if self.data.get(field) is None:
            return None
        return self.string(field)

    def identifier(self, field: str) -> str:
        """The id `field` (a string or a whole number), as a string."""
        value = self.data.get(field, MISSING)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if value is MISSING:
            self.fail(field, "missing (expected a string or a whole number)")
        got = "an empty string" if isinstance(value, str) else _type_name(value)
        if not isinstance(value, str) or not value.strip():
            self.fail(field, f"expected a non-empty string or a whole number, got {got}")
        return value

    def items(self, field: str, kind: type, count: int | None = None) -> list[Any]:
        """The list `field` of `kind` items (`count` of them when given), at least one."""
        value = self.data.get(field, MISSING)
        wanted = f"a list of {count} {_KINDS[kind]}" if count else f"a list of {_KINDS[kind]}"
        if value is MISSING:
            self.fail(field, f"missing (expected {wanted})")
        if not isinstance(value, list):
            self.fail(field, f"expected {wanted}, got {_type_name(value)}")
        if count is not None and len(value) != count:
            self.fail(field, f"expected {wanted}, got {len(value)}")
        if not value:
            self.fail(field, f"expected {wanted}, got an empty list")
        for index, item in enumerate(value):
            if not isinstance(item, kind):
                self.fail(f"{field}[{index}]", f"expected {_KIND[kind]}, got {_type_name(item)}")
        return value

    def references(self, field: str) -> tuple[str, ...]:
        """The acceptable answers `field`: a string or a list of strings; none if absent."""
        value = self.data.get(field)
        if value is None:
            return ()
        if isinstance(value, str):
            return (self.string(field),)
        if not isinstance(value, list):
            self.fail(field, f"expected a string or a list of strings, got {_type_name(value)}")
        return tuple(self.string(f"{field}[{index}]", item) for index, item in enumerate(value))

    def dialogue(self, field: str) -> tuple[tuple[dict[str, str], ...], str]:
        """The messages `field`: the earlier ones, and the last one's text (a user message)."""
        messages = self.items(field, dict)
        checked: list[dict[str, str]] = []
        for index, message in enumerate(messages):
            role = self.string(f"{field}[{index}].role", message.get("role", MISSING))
            if role not in ROLES:
                self.fail(
                    f"{field}[{index}].role", f"expected one of {', '.join(ROLES)}, got {role!r}"
                )
            content = self.string(f"{field}[{index}].content", message.get("content", MISSING))
            checked.append({"role": role, "content": content})
        last = len(checked) - 1
        if checked[last]["role"] != "user":
            self.fail(
                f"{field}[{last}].role",
                f"the last message must be a user message, got {checked[last]['role']!r}",
            )
        return tuple(checked[:last]), checked[last]["content"]

    def optional_id(self, default: str) -> tuple[str, str]:
        """The `id` field when the record has one, else `default` (the line number)."""
        if self.data.get("id") is None:
            return default, "id"
        return self.identifier("id"), "id"
