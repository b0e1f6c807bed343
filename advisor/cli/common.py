"""What every `advisor` command shares: the consoles, user-facing errors, progress, the advisor."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from advisor.config import Settings, force_offline
from advisor.errors import AdvisorError, IndexDamagedError

log = logging.getLogger(__name__)

console = Console()
err = Console(stderr=True)

# how a command itself ends early (a gate that failed, Ctrl-C at a prompt, a bad option): not errors
_COMMAND_LINE_EXITS = (
    typer.Exit,
    typer.Abort,
    click.exceptions.Exit,
    click.exceptions.Abort,
    click.ClickException,
)


@contextmanager
def user_errors(json_output: bool = False) -> Iterator[None]:
    """Turn the advisor's errors into a one-line message on stderr and exit code 2.

    With `json_output` (a command's --json), every failure prints `{"error": ..., "kind": ...}` on
    stdout instead: the advisor's errors with exit code 2, anything else logged (with its
    traceback, on stderr) and exit code 1, so a script reading stdout always gets a JSON object.
    """
    try:
        yield
    except AdvisorError as exc:
        if json_output:
            print_json_error(exc)
        else:
            err.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except _COMMAND_LINE_EXITS:
        raise
    except Exception as exc:
        if not json_output:
            raise
        log.exception("the command failed")
        print_json_error(exc)
        raise typer.Exit(1) from None


def print_json_error(exc: BaseException) -> None:
    """`{"error": message, "kind": exception class}` on stdout, one line."""
    message = str(exc) or type(exc).__name__
    # bytes that were not UTF-8 (surrogate escapes) would make stdout's encoder raise
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    sys.stdout.write(json.dumps({"error": message, "kind": type(exc).__name__}, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextmanager
def progress_bar(enabled: bool = True):
    """A rich progress bar as an ingest `Progress` callback (stderr, so --json stays clean).

    Off a terminal (logs, CI, a service) there is no live bar but plain lines: one when a stage
    starts, one at each tenth of the way and at least once a minute while it moves, so a long
    embedding shows it is alive, and one when it is done.
    """
    if not enabled:
        yield lambda *_: None
        return
    if not err.is_terminal:
        import time

        every = 60.0  # seconds between lines at the most, while the count moves
        said: dict[str, tuple[int, int, float]] = {}  # stage -> (tenths, done, time) last printed
        finished: set[str] = set()

        def plain(stage: str, done: int, total: int) -> None:
            now = time.monotonic()
            if stage not in said:
                said[stage] = (0, done, now)
                err.print(f"{stage}: {total} to do", highlight=False)
                return
            if stage in finished:
                return
            if done >= total:
                finished.add(stage)
                err.print(f"{stage}: done ({total})", highlight=False)
                return
            tenths, last_done, at = said[stage]
            step = done * 10 // total
            if step > tenths or (done > last_done and now - at >= every):
                said[stage] = (max(step, tenths), done, now)
                err.print(f"{stage}: {done}/{total} ({done * 100 // total}%)", highlight=False)

        yield plain
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=max(total, 1))
        bar.update(tasks[stage], completed=done, total=max(total, 1))

    with bar:
        yield update


def open_advisor(settings: Settings | None = None, build_if_missing: bool = True, quiet: bool = False):
    """The advisor over the published index, built first (with progress on stderr) when none exists
    and rebuilt when the embedded index is damaged (`Advisor.rebuild_damaged`; a damaged index on a
    Chroma server is an IndexDamagedError, shown by `user_errors`)."""
    from advisor.advisor import build_advisor

    force_offline()
    settings = settings or Settings()
    advisor = build_advisor(settings, load=False)
    try:
        if advisor.load() or not build_if_missing:
            return advisor
    except IndexDamagedError as damage:
        if not build_if_missing or settings.server_mode:
            raise
        err.print(
            f"{escape(str(damage))}\nRebuilding it from the corpus now.", highlight=False, soft_wrap=True
        )
        with progress_bar(not quiet) as progress:
            report = advisor.rebuild_damaged(damage, progress=progress)
    else:
        err.print("No index yet: building it from the corpus first (this happens once).")
        with progress_bar(not quiet) as progress:
            report = advisor.ingest(progress=progress)
    print_ingest_summary(report, to=err)
    return advisor


def print_ingest_summary(report, to: Console = console) -> None:
    state = "published a new index" if report.published else "index already up to date"
    to.print(
        f"[bold]{report.documents}[/] documents, [bold]{report.chunks}[/] chunks "
        f"({report.embedded_chunks} embedded now) in {report.seconds:.1f}s: {state}."
    )
    if report.re_embedded_because:
        to.print(f"  embedded everything again: {report.re_embedded_because}", highlight=False)
    for label, names in (
        ("added", report.added),
        ("updated", report.updated),
        ("removed", report.removed),
        ("unchanged", report.unchanged),
    ):
        if names:
            to.print(f"  {label}: {', '.join(names)}")
    for path, reason in report.skipped:
        to.print(f"  [yellow]skipped[/] {path}: {reason}", highlight=False)
    for name in report.kept_previous:
        to.print(f"  [yellow]kept the previously indexed version of[/] {name}")


def write_whole(out: Path, data: bytes) -> None:
    """Write the file in one step: a failure leaves no half-written file (and an earlier one as it was)."""
    partial = out.with_name(f".{out.name}.part")
    try:
        partial.write_bytes(data)
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise AdvisorError(f"Cannot write {out}: {exc.strerror or exc}.") from None
