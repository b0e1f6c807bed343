"""The index built in the background on first run, so the page can open at once."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from advisor.advisor import Advisor
from advisor.web.render import escape_text

log = logging.getLogger(__name__)


@dataclass
class IndexBuilder:
    """Loads the index, or builds it in a background thread, reporting progress for the page."""

    advisor: Advisor
    stage: str = "starting"
    done: int = 0
    total: int = 0
    error: str | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        """Load the index, or start building it when there is none."""
        if self.advisor.ready or self.advisor.load():
            return
        self._thread = threading.Thread(target=self._build, name="index-builder", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        try:
            self.advisor.ensure_index(progress=self._progress)
        except Exception as exc:  # shown in the page; the process keeps serving
            log.exception("building the index failed")
            self.error = str(exc)

    def _progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total
        log.info("%s: %d/%d", stage, done, total)

    def banner(self) -> str:
        """A line (Markdown) for the top of the page while the index is not ready."""
        if self.error:
            return f"**The library could not be built:** {escape_text(self.error)}"
        progress = f" ({self.done}/{self.total})" if self.total else ""
        return (
            f"**Building the library of reports** - {escape_text(self.stage.lower())}{progress}. "
            "Questions are answered as soon as it is ready."
        )

    def status(self) -> str:
        """A sentence for the chat while the index is not ready."""
        if self.error:
            return f"The library could not be built: {self.error}"
        progress = f" ({self.done}/{self.total})" if self.total else ""
        return (
            "The advisor is still building its library of reports"
            f" - {self.stage.lower()}{progress}. Please ask again in a moment."
        )
