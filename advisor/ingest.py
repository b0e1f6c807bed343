"""Ingest stage: files -> SourceDoc -> Chunk -> vectors -> a new published index generation.

Incremental: a document whose bytes (and the pipeline that chunks them) are unchanged is
copied from the published generation, a changed one is re-chunked, a removed one is left
out. A file that cannot be read, or is longer than `max_file_chars`, is skipped with its
reason; if an earlier version of it was indexed, that version is kept rather than lost. A
symbolic link in a corpus folder is never followed: it is skipped with its reason, and a report
that has turned into one is removed from the index, not kept. Nothing is published until the
whole new generation is written, so an interrupted ingest leaves the previous index serving.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from advisor.answer import QUOTABLE_WORDS
from advisor.chunking import PIPELINE_VERSION, Chunker
from advisor.config import Settings
from advisor.corpus import Manifest, find_reports
from advisor.embedding import Embedder
from advisor.errors import AdvisorError, IngestError
from advisor.loaders import check_size, load_document
from advisor.sentences import sentence_spans
from advisor.store import ChromaStore, DocRecord
from advisor.types import Chunk

log = logging.getLogger(__name__)

# (stage description, done, total)
Progress = Callable[[str, int, int], None]

EMBED_FORMAT = "3"  # bump when what is embedded for a chunk changes


def embedding_text(chunk: Chunk) -> str:
    """What the dense index embeds: the chunk with its case study and section as context."""
    context = " - ".join(p for p in (chunk.case_study, chunk.section) if p)
    return f"{context}: {chunk.text}" if context else chunk.text


def chunk_sentences(chunk: Chunk) -> list[tuple[str, str, int, int]]:
    """(chunk id, sentence, start, end) for every sentence of a chunk the answerer may quote.

    Fragments (a heading, a cut bullet) and run-ons are left out: the extractive answerer
    never quotes them, so embedding them would only slow the ingest.
    """
    return [
        (chunk.id, chunk.text[s:e], s, e)
        for s, e in sentence_spans(chunk.text)
        if QUOTABLE_WORDS[0] <= len(chunk.text[s:e].split()) <= QUOTABLE_WORDS[1]
    ]


@dataclass
class IngestReport:
    """What an ingest did, for the CLI summary and the tests."""

    documents: int = 0
    chunks: int = 0
    sentences: int = 0
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    kept_previous: list[str] = field(default_factory=list)  # unreadable now, old version kept
    published: bool = False
    generation: str = ""
    seconds: float = 0.0
    embedded_chunks: int = 0
    re_embedded_because: str = ""  # why every chunk was embedded again ("" when not for that)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


class Ingestor:
    """Builds or refreshes the index from corpus files."""

    def __init__(self, settings: Settings, embedder: Embedder, store: ChromaStore) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.chunker = Chunker(settings.chunk_words, settings.chunk_overlap_words)

    def signature(self) -> str:
        """Changes whenever the same files would give a different index."""
        parts = [
            PIPELINE_VERSION,
            EMBED_FORMAT,
            Path(self.settings.model_path()).name,
            str(self.settings.chunk_words),
            str(self.settings.chunk_overlap_words),
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def run(
        self,
        paths: list[Path] | None = None,
        rebuild: bool = False,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Bring the index in line with the files under `paths` (default: the corpus folder)."""
        started = time.perf_counter()
        report = IngestReport()
        progress = progress or (lambda *_: None)
        roots = [Path(p).resolve() for p in (paths or [self.settings.corpus_dir])]
        for root in roots:
            if not root.exists():
                raise IngestError(f"No such file or folder: {root}")
        manifest = Manifest.load(self.settings.corpus_dir)
        found = find_reports(roots)
        files = found.files
        report.skipped.extend((str(path), reason) for path, reason in found.skipped)
        state = self.store.state()
        signature = self.signature()
        encoder = self.embedder.encoder_identity
        # another encoder's vectors are never mixed with these: re-embed everything
        full = rebuild or state is None or state.signature != signature or not state.encoder_matches(encoder)
        if state is not None and not state.encoder_matches(encoder):
            built = state.encoder or "torch (not recorded)"
            report.re_embedded_because = (
                f"the index was built with the encoder {built}; this advisor encodes with {encoder}"
            )
        old_docs: dict[str, DocRecord] = {} if state is None else dict(state.docs)

        docs: dict[str, DocRecord] = {}
        keep: list[str] = []  # sources copied from the published generation
        fresh: list[Chunk] = []
        seen: set[str] = set()
        progress("Reading reports", 0, len(files))
        for n, path in enumerate(files, start=1):
            source = path.name
            if source in seen:
                report.skipped.append((str(path), f"another file named {source} was ingested"))
                continue
            seen.add(source)
            try:
                check_size(path, self.settings.max_file_chars)  # before reading it to hash it
                raw_hash = hashlib.sha256(path.read_bytes()).hexdigest()
            except (OSError, AdvisorError) as exc:
                reason = f"cannot be read: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
                report.skipped.append((str(path), reason))
                self._keep_previous(source, old_docs, full, docs, keep, report)
                continue
            old = old_docs.get(source)
            if not full and old is not None and old.content_hash == raw_hash:
                docs[source] = old
                keep.append(source)
                report.unchanged.append(source)
                progress("Reading reports", n, len(files))
                continue
            try:
                doc = load_document(path, manifest.info_for(path), self.settings.max_file_chars)
                chunks = self.chunker.chunk(
                    doc, manifest.case_studies_for(source), manifest.running_headers_for(source)
                )
                if not chunks:
                    raise AdvisorError("no text to index after cleaning")
            except AdvisorError as exc:
                report.skipped.append((str(path), str(exc)))
                self._keep_previous(source, old_docs, full, docs, keep, report)
                continue
            fresh.extend(chunks)
            docs[source] = DocRecord(
                source=source,
                content_hash=raw_hash,
                path=str(path),
                title=doc.info.title,
                chunks=len(chunks),
            )
            (report.updated if old is not None else report.added).append(source)
            progress("Reading reports", n, len(files))
        progress("Reading reports", len(files), len(files))  # done, even when the last was skipped

        for source, old in old_docs.items():
            if source in docs:
                continue
            under_roots = any(_is_under(Path(old.path), root) for root in roots)
            if rebuild or under_roots:
                report.removed.append(source)
            elif not full:  # ingested from elsewhere, not part of this run: keep it
                docs[source] = old
                keep.append(source)

        report.documents = len(docs)
        report.chunks = sum(d.chunks for d in docs.values())
        if not full and not report.changed:
            report.seconds = time.perf_counter() - started
            report.generation = state.generation if state else ""
            return report
        if not docs:
            raise IngestError(
                "Nothing to index: no readable report was found"
                + (f" (skipped: {len(report.skipped)})" if report.skipped else "")
            )

        writer = self.store.new_generation()
        try:
            if state is not None and keep:
                writer.copy_documents(state, keep)
            report.sentences = self._embed_and_add(writer, fresh, progress)
            report.embedded_chunks = len(fresh)
            self.store.publish(writer.generation, signature, docs, encoder)
        except BaseException:
            writer.abandon()
            raise
        report.published = True
        report.generation = writer.generation
        report.seconds = time.perf_counter() - started
        return report

    def _keep_previous(self, source, old_docs, full, docs, keep, report) -> None:
        old = old_docs.get(source)
        if old is not None and not full:
            docs[source] = old
            keep.append(source)
            report.kept_previous.append(source)

    def _embed_and_add(self, writer, chunks: list[Chunk], progress: Progress) -> int:
        batch = max(1, self.settings.embedding_batch_size) * 4
        total = len(chunks)
        n_sentences = 0
        progress("Embedding passages", 0, total)
        for start in range(0, total, batch):
            part = chunks[start : start + batch]
            sentences = [s for c in part for s in chunk_sentences(c)]
            # overlapping chunks share sentences: embed each distinct sentence once
            unique = list(dict.fromkeys(s[1] for s in sentences))
            row_of = {text: i for i, text in enumerate(unique)}
            unique_vectors = self.embedder.encode(unique)
            sentence_vectors = (
                unique_vectors[[row_of[s[1]] for s in sentences]]
                if sentences
                else np.zeros((0, self.embedder.dimension), dtype=np.float32)
            )
            chunk_vectors = self.embedder.encode([embedding_text(c) for c in part])
            writer.add_chunks(part, chunk_vectors, sentences, sentence_vectors)
            n_sentences += len(sentences)
            progress("Embedding passages", min(start + batch, total), total)
        return n_sentences


def _is_under(path: Path, root: Path) -> bool:
    # Where the file was found, not where a link there leads: a report replaced by a link out of
    # the corpus is still the corpus's, and is removed rather than kept as if from elsewhere.
    return Path(os.path.abspath(path)).is_relative_to(root)
