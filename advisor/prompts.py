"""Prompts are files: `prompts/<name>.txt`, read as UTF-8 and rendered by name.

Rendering is strict: a variable the template names but the caller did not give is an error,
never a silent blank, and so is a variable the caller gives that the template never uses
(usually a typo on one side). Templates use `{name}` fields; a literal brace is `{{` or `}}`.
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


def render_prompt(name: str, directory: Path = PROMPTS_DIR, **variables: object) -> str:
    """`prompts/<name>.txt` with its fields filled; a missing or unused variable is an error."""
    template = load_prompt(name, directory)
    needed = prompt_variables(template)
    missing = sorted(needed - variables.keys())
    if missing:
        raise KeyError(f"prompt {name!r} needs variable(s) {', '.join(missing)}")
    unused = sorted(variables.keys() - needed)
    if unused:
        raise KeyError(f"prompt {name!r} has no variable(s) {', '.join(unused)}")
    return template.format(**variables)
