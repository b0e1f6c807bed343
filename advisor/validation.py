"""Turning pydantic's validation errors into messages that name the field (the catalogue's and the
guidance map's schemas both use these)."""

from __future__ import annotations

from typing import Any

MISSING_KINDS = frozenset({"missing", "string_too_short", "too_short"})  # absent, empty text or empty list


def message(error: Any) -> str:
    """Pydantic's message, or the text of a validator's own ValueError."""
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    return error["msg"]


def field_problem(path: tuple, error: Any) -> str:
    """The field named, then what is wrong: "'source' is missing or empty", "'year': Input should be ..."."""
    name = path[0]
    inner = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[1:])
    if error["type"] in MISSING_KINDS and not inner:
        return f"{name!r} is missing or empty"
    return f"{name!r}{inner}: {message(error)}"
