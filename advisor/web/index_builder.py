"""The index built in the background on first run, so the page can open at once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from advisor.advisor import Advisor
from advisor.errors import IndexDamagedError
from advisor.web.render import escape_text

log = logging.getLogger(__name__)


@dataclass
class IndexBuilder:
    """Loads the index, or builds it in a background thread, reporting progress for the page.

    A damaged embedded index is rebuilt the same way. A damaged index on a Chroma server is not
    rebuilt here (others read it too) but shown (`damaged`), and read again when a question
    comes (`ready_now`): whoever runs the server may have rebuilt it since.
    """

    advisor: Advisor
    stage: str = "starting"
    done: int = 0
    total: int = 0
    error: str | None = None  # why the build failed
    damaged: str | None = None  # why the published index cannot be read, while it is not rebuilt here
    rebuilding: bool = False  # the build replaces a damaged index
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        """Load the index, or start building it when there is none or it is damaged."""
        try:
            if self.advisor.ready or self.advisor.load():
                return
            build = self.advisor.ensure_index
        except IndexDamagedError as damage:
            if self.advisor.settings.server_mode:
                log.error("%s", damage)
                self.damaged = str(damage)
                return
            log.warning("%s Rebuilding it in the background.", damage)
            self.rebuilding = True
            build = partial(self.advisor.rebuild_damaged, damage)
        self._thread = threading.Thread(target=self._build, args=(build,), name="index-builder", daemon=True)
        self._thread.start()

    def ready_now(self) -> bool:
        """Whether questions can be answered now; a damaged index not rebuilt here is read again."""
        if self.advisor.ready:
            return True
        if self.damaged is None:
            return False
        try:
            loaded = self.advisor.load()
        except IndexDamagedError as damage:
            self.damaged = str(damage)
            return False
        if loaded:
            self.damaged = None
        return loaded

    def _build(self, build: Callable[..., object]) -> None:
        try:
            build(progress=self._progress)
        except Exception as exc:  # shown in the page; the process keeps serving
            log.exception("building the index failed")
            self.error = str(exc)

    def _progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total
        log.info("%s: %d/%d", stage, done, total)

    def banner(self) -> str:
        """A line (Markdown) for the top of the page while the index is not ready."""
        if self.damaged:
            return f"**The library of reports cannot be read.** {escape_text(self.damaged)}"
        if self.error:
            return f"**The library could not be built:** {escape_text(self.error)}"
        progress = f" ({self.done}/{self.total})" if self.total else ""
        what = (
            "Rebuilding the damaged library of reports"
            if self.rebuilding
            else "Building the library of reports"
        )
        return (
            f"**{what}** - {escape_text(self.stage.lower())}{progress}. "
            "Questions are answered as soon as it is ready."
        )

    def status(self) -> str:
        """A sentence for the chat while the index is not ready."""
        if self.damaged:
            return f"The library of reports cannot be read. {self.damaged}"
        if self.error:
            return f"The library could not be built: {self.error}"
        progress = f" ({self.done}/{self.total})" if self.total else ""
        what = (
            "rebuilding its damaged library of reports"
            if self.rebuilding
            else "building its library of reports"
        )
        return f"The advisor is still {what} - {self.stage.lower()}{progress}. Please ask again in a moment."
