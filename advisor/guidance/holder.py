"""`Guidance`: the guidance map as the advisor serves it, reloaded with the corpus.

A reload that finds the map broken keeps serving the last good map (and remembers the
error), exactly as `CatalogueLoader` does for the case catalogue. Nothing here searches:
matching a question to themes lives in `advisor.guidance.matching`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from advisor.errors import GuidanceError
from advisor.guidance.loading import CaseNames, catalogue_case_names, load_guidance
from advisor.guidance.model import GUIDANCE_NAME, GuidanceMap, Theme

log = logging.getLogger(__name__)


class Guidance:
    """The last good guidance map of a corpus folder, its themes filtered on request."""

    def __init__(self, corpus_dir: Path, case_names: CaseNames | Iterable[str] | None = None) -> None:
        self.corpus_dir = Path(corpus_dir)
        self.case_names = case_names  # None: read them from the catalogue at every reload
        self.current: GuidanceMap | None = None
        self.error: str | None = None

    @property
    def path(self) -> Path:
        return self.corpus_dir / GUIDANCE_NAME

    def reload(self, case_names: CaseNames | Iterable[str] | None = None) -> GuidanceMap | None:
        """Read the map again; on error log it, remember it and keep the previous map."""
        if case_names is not None:
            self.case_names = case_names
        if not self.path.exists():
            self.error = None
            return self.current
        try:
            names = self.case_names if self.case_names is not None else catalogue_case_names(self.corpus_dir)
            self.current = load_guidance(self.path, self.corpus_dir, names)
            self.error = None
        except GuidanceError as exc:
            self.error = str(exc)
            kept = "the previous map keeps serving" if self.current else "no guidance map is served"
            log.error("guidance map not loaded (%s): %s", kept, exc)
        return self.current

    def themes(
        self, audience: str | None = None, stage: str | None = None, theme: str | None = None
    ) -> list[Theme]:
        """The served map's themes for an audience, stage and/or theme ([] when no map is served)."""
        return [] if self.current is None else self.current.filtered(audience, stage, theme)

    def theme(self, key: str) -> Theme | None:
        """A served theme by id or title (case-insensitive), or None."""
        return None if self.current is None else self.current.theme(key)
