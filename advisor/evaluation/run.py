"""Running a set: every question answered once, each record appended as soon as it exists.

A re-run with the same output folder continues where an interrupted one stopped (a question whose
wording changed since is answered again).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from advisor.evaluation.datasets import EvalItem

RECORDS = "records.jsonl"
RESULTS = "results.jsonl"
SUMMARY = "summary.json"

AnswerFn = Callable[[str], dict]  # a question -> a record shaped like `Answer.to_record()`


def answer_all(
    items: list[EvalItem], answer: AnswerFn, out_dir: Path, name: str = RECORDS, progress=None
) -> dict[str, dict]:
    """Answer every question not answered yet, appending each record as soon as it exists."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    done: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interruption: answered again below
            done[row["id"]] = row
    with path.open("a", encoding="utf-8") as f:
        for item in items:
            if item.id not in done or done[item.id].get("question", item.user_input) != item.user_input:
                # new, or its question was edited since the interrupted run: answered (again)
                record = {"id": item.id, **answer(item.user_input)}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                f.flush()
                done[item.id] = record
            if progress:
                progress(item)
    return {item.id: done[item.id] for item in items}


def write_results(
    out_dir: Path, items: list[EvalItem], records: dict, values: dict, name: str = RESULTS
) -> None:
    """results.jsonl: one line per question, its record plus its metric values."""
    with (out_dir / name).open("w", encoding="utf-8") as f:
        for item in items:
            row = {
                **records[item.id],
                "kind": item.kind,
                "sources": list(item.sources),
                "metrics": values[item.id],
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
