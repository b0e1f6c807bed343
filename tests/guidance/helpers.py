"""Helpers of the guidance map's tests: the real map's file, broken copies, the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from advisor.guidance import GUIDANCE_NAME
from tests.conftest import CORPUS

ADVISOR = str(Path(sys.executable).with_name("advisor"))
NUFFIELD = "nuffield-2020-achieving-scale-and-spread.txt"
ODDS = "against-the-odds-2018-report.txt"


def read_map(corpus: Path = CORPUS) -> dict:
    return yaml.safe_load((corpus / GUIDANCE_NAME).read_text(encoding="utf-8"))


def mutate(corpus: Path, change) -> None:
    """Rewrite the guidance map of a corpus copy after `change(themes)` edits its themes."""
    data = read_map(corpus)
    change(data["themes"])
    (corpus / GUIDANCE_NAME).write_text(
        yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )


def theme_entry(themes, theme_id):
    return next(t for t in themes if t["id"] == theme_id)


def point_at(themes, source, line):
    """(theme, point) of the map's point quoting `source` at `line`."""
    return next((t, p) for t in themes for p in t["points"] if p["source"] == source and p["line"] == line)


def run_cli(args, corpus=CORPUS, timeout=120):
    """`advisor ARGS` on a corpus, in a subprocess."""
    env = {**os.environ, "ADVISOR_CORPUS_DIR": str(corpus)}
    return subprocess.run(
        [ADVISOR, *args], check=False, env=env, capture_output=True, text=True, timeout=timeout
    )
