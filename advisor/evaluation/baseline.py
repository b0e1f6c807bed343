"""The naive baseline: the RAG a user would build from the LangChain tutorial.

Raw files (no cleaning), RecursiveCharacterTextSplitter(1000, 200), Chroma similarity top-k
with the same local embedding model, and the simplest offline answer (the top passage's
opening sentences, uncited, never refusing). Evaluated beside the advisor so the gap is
measured, not claimed. `CaseLocator` gives its raw-text passages the case study they come from,
so that the baseline is scored on questions across case studies too.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from advisor.corpus import discover_files
from advisor.embedding import Embedder
from advisor.sentences import split_sentences

COLLECTION = "tutorial_baseline"


class TutorialBaseline:
    """Chunk, embed and search the raw reports the tutorial way."""

    def __init__(self, corpus_dir: Path, persist_dir: Path, embeddings: Embedder, k: int = 5) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from langchain_chroma import Chroma

        self.k = k
        self.files = [p for p in discover_files([corpus_dir]) if p.suffix == ".txt"]
        client = chromadb.PersistentClient(
            path=str(persist_dir), settings=ChromaSettings(anonymized_telemetry=False)
        )
        # one collection per corpus version: a changed report is never searched in its old form
        name = f"{COLLECTION}_{self._fingerprint()}"
        self.store = Chroma(client=client, collection_name=name, embedding_function=embeddings)
        if not self.store.get(limit=1)["ids"]:
            self._build()

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in sorted(self.files):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()[:16]

    def _build(self) -> None:
        from langchain_core.documents import Document
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        docs = []
        for path in self.files:
            text = path.read_text(encoding="utf-8")
            docs.append(Document(page_content=text, metadata={"source": path.name}))
        chunks = splitter.split_documents(docs)
        self.store.add_documents(chunks)

    def ask(self, question: str) -> dict:
        """A record shaped like the advisor's JSON record."""
        t0 = time.perf_counter()
        docs = self.store.similarity_search(question, k=self.k)
        t1 = time.perf_counter()
        opening = split_sentences(docs[0].page_content)[:2] if docs else []
        top = " ".join(opening)
        return {
            "question": question,
            "answer": top,
            "refused": False,
            "backend": "tutorial-baseline",
            "sentences": [{"text": s, "markers": [], "verdict": "uncited"} for s in opening],
            "citations": [],
            "passages": [
                {
                    "rank": i,
                    "chunk_id": f"baseline-{i}",
                    "source": d.metadata.get("source", ""),
                    "text": d.page_content,
                }
                for i, d in enumerate(docs, start=1)
            ],
            "timings_ms": {
                "retrieve": (t1 - t0) * 1000,
                "answer": 0.0,
                "total": (time.perf_counter() - t0) * 1000,
            },
        }


class CaseLocator:
    """Which case study a raw-text passage (the baseline's) comes from, by its place in the report."""

    def __init__(self, corpus_dir: Path) -> None:
        from advisor.chunking import locate_case_studies
        from advisor.corpus import Manifest

        manifest = Manifest.load(Path(corpus_dir))
        self.reports: dict[str, tuple[str, list[tuple[int, int, str]]]] = {}
        for source in manifest.entries:
            file = Path(corpus_dir) / source
            if not file.is_file():
                continue
            text = file.read_text(encoding="utf-8")
            lines = text.split("\n")
            starts = [0]
            for line in lines:
                starts.append(starts[-1] + len(line) + 1)
            spans = [
                (starts[first], starts[end], spec.name)
                for spec, first, end in locate_case_studies(lines, manifest.case_studies_for(source))
            ]
            self.reports[source] = (text, spans)

    def case_of(self, source: str, text: str) -> str | None:
        """The case study whose part of the report holds the middle of the passage, or None."""
        report, spans = self.reports.get(source, ("", []))
        at = report.find(text.strip()) if text.strip() else -1
        if at < 0:
            return None
        middle = at + len(text.strip()) // 2
        return next((name for a, b, name in spans if a <= middle < b), None)

    def annotate(self, records: dict[str, dict]) -> dict[str, dict]:
        """Records whose passages carry no case study metadata, given it (others unchanged)."""
        out = {}
        for key, record in records.items():
            passages = record.get("passages", [])
            if all("case_study" in p for p in passages):
                out[key] = record
                continue
            out[key] = {
                **record,
                "passages": [
                    p
                    if "case_study" in p
                    else {**p, "case_study": self.case_of(p.get("source", ""), p.get("text", ""))}
                    for p in passages
                ],
            }
        return out
