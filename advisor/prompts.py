"""Prompts are files: `prompts/<name>.txt`, read as UTF-8 and loaded by name.

Loading is strict: a field the template names but the caller does not fill is an error, never
a silent blank, and so is a variable the caller fills that the template never uses (usually a
typo on one side). Templates use `{name}` fields; a literal brace is `{{` or `}}`.
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

from advisor.config import PROJECT_ROOT
from advisor.errors import ConfigError

PROMPTS_DIR = PROJECT_ROOT / "prompts"


@lru_cache(maxsize=64)
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def load_prompt(name: str, directory: Path = PROMPTS_DIR) -> str:
    """The text of `prompts/<name>.txt`."""
    path = Path(directory) / f"{name}.txt"
    if not path.is_file():
        raise ConfigError(f"Prompt file not found: {path}")
    return _read(path)


def prompt_variables(template: str) -> set[str]:
    """The `{name}` fields a template uses."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def prompt_template(name: str, variables: set[str] | frozenset[str], directory: Path = PROMPTS_DIR) -> str:
    """The text of `prompts/<name>.txt`, checked against the variables its caller will fill.

    A field the caller does not fill (it would fail, or go blank, at answer time) and a variable
    the caller fills but the template never uses (usually a typo on one side) are both errors,
    raised when the chain is built rather than when a user asks.
    """
    template = load_prompt(name, directory)
    needed = prompt_variables(template)
    missing = sorted(needed - variables)
    if missing:
        raise ConfigError(f"prompt {name!r} uses {', '.join(missing)}, which the advisor does not fill")
    unused = sorted(variables - needed)
    if unused:
        raise ConfigError(f"prompt {name!r} does not use {', '.join(unused)}")
    return template
