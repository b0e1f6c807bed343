"""The corpus manifest: what each report is, and where its case studies begin and end.

`corpus/manifest.yaml` describes each report (title, publisher, year, kind, url) and lists its
case studies by the exact line that starts each one. A file without an entry still loads,
titled from its file name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from advisor.errors import AdvisorError
from advisor.types import DocumentInfo
from advisor.yamlfile import safe_load

MANIFEST_NAME = "manifest.yaml"
SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".pdf", ".html", ".htm")
_NOT_REPORTS = {
    MANIFEST_NAME,
    "case_studies.yaml",
    "case_studies_vocabulary.yaml",
    "CASE_STUDIES.md",
    "GUIDANCE.md",
}
# The corpus folder also holds the advisor's own data about the reports (the manifest, the
# case-study catalogue, the guidance map and its drafts), all YAML; a report is never YAML.
_DATA_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class CaseStudySpec:
    """Where one case study sits in its report."""

    name: str
    start: str  # an exact line (white space trimmed) at which the case study begins
    end: str = ""  # the first line after it, when something other than a case study follows
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ManifestEntry:
    info: DocumentInfo
    case_studies: tuple[CaseStudySpec, ...] = ()
    running_headers: tuple[str, ...] = ()  # regexes for page furniture lines to drop


@dataclass(frozen=True)
class Manifest:
    """Every described report, by corpus file name."""

    entries: dict[str, ManifestEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, corpus_dir: Path) -> Manifest:
        """Read `manifest.yaml` from a corpus folder (an empty manifest if there is none)."""
        path = Path(corpus_dir) / MANIFEST_NAME
        if not path.exists():
            return cls()
        try:
            data = safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise AdvisorError(f"{path} is not valid YAML: {exc}") from exc
        docs = data.get("documents") if isinstance(data, dict) else None
        if not isinstance(docs, list):
            raise AdvisorError(f"{path}: expected a top-level 'documents:' list")
        entries: dict[str, ManifestEntry] = {}
        for n, doc in enumerate(docs, start=1):
            where = f"{path}, document {n}"
            if not isinstance(doc, dict) or not doc.get("source") or not doc.get("title"):
                raise AdvisorError(f"{where}: every document needs 'source' and 'title'")
            try:
                year = int(doc["year"]) if doc.get("year") else None
            except (TypeError, ValueError):
                raise AdvisorError(f"{where}: 'year' must be a number, got {doc.get('year')!r}") from None
            info = DocumentInfo(
                source=str(doc["source"]),
                title=str(doc["title"]),
                publisher=str(doc.get("publisher", "") or ""),
                year=year,
                date=str(doc.get("date", "") or ""),
                kind=str(doc.get("kind", "") or ""),
                url=str(doc.get("url", "") or ""),
            )
            specs = []
            for m, case in enumerate(doc.get("case_studies") or [], start=1):
                if not isinstance(case, dict) or not case.get("name") or not case.get("start"):
                    raise AdvisorError(f"{where}, case study {m}: needs 'name' and 'start'")
                specs.append(
                    CaseStudySpec(
                        name=str(case["name"]),
                        start=str(case["start"]).strip(),
                        end=str(case.get("end", "") or "").strip(),
                        aliases=tuple(str(a) for a in case.get("aliases") or ()),
                    )
                )
            headers = tuple(str(h) for h in doc.get("running_headers") or ())
            for pattern in headers:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise AdvisorError(f"{where}: bad running_headers pattern {pattern!r}: {exc}") from exc
            entries[info.source] = ManifestEntry(info, tuple(specs), headers)
        return cls(entries)

    def info_for(self, path: Path) -> DocumentInfo:
        """The manifest's description of a file, or one derived from its name."""
        entry = self.entries.get(path.name)
        if entry is not None:
            return entry.info
        title = re.sub(r"[-_]+", " ", path.stem).strip().capitalize() or path.name
        return DocumentInfo(source=path.name, title=title)

    def case_studies_for(self, source: str) -> list[CaseStudySpec]:
        """The case studies listed for a report (empty when none or unknown)."""
        entry = self.entries.get(source)
        return list(entry.case_studies) if entry else []

    def running_headers_for(self, source: str) -> list[str]:
        """Regexes of page-furniture lines particular to a report."""
        entry = self.entries.get(source)
        return list(entry.running_headers) if entry else []


@dataclass(frozen=True)
class ReportFiles:
    """The candidate reports found under some paths, and the entries passed over, with why."""

    files: list[Path]
    skipped: list[tuple[Path, str]]


def find_reports(paths: list[Path]) -> ReportFiles:
    """Every candidate report under the given folders (sorted; the corpus's own data files and
    hidden entries excluded) and every file given by name.

    No symbolic link inside a folder is followed, file or folder: one that leads outside the
    folder would put another part of the disk in front of users (a link to /etc/passwd named
    x.txt), and one that stays inside only names a file already read from its own place (or a
    hidden one, kept out on purpose). Each link is passed over with a reason saying which kind
    it is. A file named directly is read wherever it leads: the operator chose it.
    """
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            _walk(path, path.resolve(), files, skipped)
        elif path.is_file():
            files.append(path)
    return ReportFiles(files, skipped)


def discover_files(paths: list[Path]) -> list[Path]:
    """The candidate reports of `find_reports`, without the reasons for what it passed over."""
    return find_reports(paths).files


def _walk(folder: Path, root: Path, files: list[Path], skipped: list[tuple[Path, str]]) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        skipped.append((folder, f"folder cannot be read: {exc.strerror or exc}"))
        return
    for entry in entries:
        child = folder / entry.name
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            skipped.append((child, _link_reason(child, root)))
        elif entry.is_dir():
            _walk(child, root, files, skipped)
        elif entry.is_file() and not _is_data(child):
            files.append(child)


def _is_data(path: Path) -> bool:
    return path.name in _NOT_REPORTS or path.suffix.lower() in _DATA_SUFFIXES


def _link_reason(link: Path, root: Path) -> str:
    target = Path(os.path.realpath(link))
    if not target.is_relative_to(root):
        return f"a symbolic link that leads outside the corpus folder {root}: links are not followed"
    return f"a symbolic link (to {target.relative_to(root)}): links are not followed"
