"""YAML read with libyaml's C loader when PyYAML was built with it (`yaml.__with_libyaml__`).

The pure-Python loader took ~3.9 s of a cold `advisor ask` reading the corpus's YAML files
(guidance.yaml most of it); the C loader reads the same data several times faster. Both are
safe loaders (plain data only) and raise `yaml.YAMLError` on bad input.
"""

from __future__ import annotations

from typing import Any

import yaml

SafeLoader: type = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader


def safe_load(text: str) -> Any:
    """`yaml.safe_load`, with the C loader where available."""
    return yaml.load(text, Loader=SafeLoader)
