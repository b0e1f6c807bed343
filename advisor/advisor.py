"""The composition root: `build_advisor(settings)` wires every stage; front ends call `Advisor`.

question --condense--> query --retrieve--> Passage[] --answer--> Answer
The CLI, the web page, the Slack bot and the evaluator all go through `Advisor.ask` (or
`Advisor.stream`), so they answer alike.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.answer import ExtractiveAnswerer, ReportTerms
from advisor.cases import CatalogueLoader
from advisor.condense import RuleBasedCondenser
from advisor.config import Settings, force_offline
from advisor.corpus import Manifest
from advisor.coverage import CoverageModel
from advisor.embedding import Embedder, make_embeddings
from advisor.errors import (
    AdvisorError,
    IndexDamagedError,
    IndexEncoderMismatchError,
    IndexMissingError,
    InvalidQuestionError,
)
from advisor.guidance import Guidance
from advisor.guidance.answer import GuidanceAnswerer
from advisor.ingest import Ingestor, IngestReport, Progress
from advisor.llm import ReplyBudget
from advisor.retrieval import HybridRetriever, IndexSnapshot
from advisor.store import ChromaStore, IndexState, SentenceIndex
from advisor.text import normalise_space
from advisor.types import Answer, Chunk, Filters, Passage

if TYPE_CHECKING:
    from advisor.chain import LLMAnswerer

log = logging.getLogger(__name__)

WARM_UP_QUESTION = "How do innovations spread across the NHS?"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]")
# lone surrogates: bytes that were not UTF-8 (on Linux, argv and file names carry them as
# \udc80-\udcff), or a broken escape in JSON; the tokenizer cannot take them
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_FRESHNESS_SECONDS = 5.0


@dataclass(frozen=True)
class DocumentSummary:
    """One report in the index, for `advisor sources` and the web page."""

    source: str
    title: str
    publisher: str
    year: int
    chunks: int
    case_studies: dict[str, int]  # case study name -> chunk count


def clean_question(question: str, max_chars: int) -> str:
    """The question as the advisor will read it, or InvalidQuestionError saying why not."""
    if question is None:
        raise InvalidQuestionError("Please type a question.")
    text = str(question)
    surrogates = _SURROGATE.findall(text)
    if surrogates:
        shown = " ".join(_undecoded(c) for c in surrogates[:5]) + (" ..." if len(surrogates) > 5 else "")
        raise InvalidQuestionError(
            f"The question is not valid text: it has {len(surrogates)} byte(s) that are not UTF-8 "
            f"({shown}). Please type it again in a UTF-8 terminal or editor."
        )
    text = unicodedata.normalize("NFC", text)
    controls = len(_CONTROL.findall(text))
    if controls and controls > max(3, len(text) // 10):
        raise InvalidQuestionError(
            f"The question contains {controls} control characters; please type it as plain text."
        )
    text = _CONTROL.sub(" ", text)
    text = normalise_space(text)
    if not text:
        raise InvalidQuestionError("Please type a question: it was empty.")
    if len(text) > max_chars:
        raise InvalidQuestionError(
            f"The question is {len(text):,} characters long; the limit is {max_chars:,}. "
            "Please ask it in fewer words."
        )
    if not re.search(r"\w", text):
        raise InvalidQuestionError("Please type a question in words.")
    return text


def _undecoded(char: str) -> str:
    """How a lone surrogate reads in a message: the byte it escaped (\\xff), or its code point."""
    code = ord(char)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"


class Advisor:
    """Answers questions from the indexed reports, with a citation for every sentence."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: ChromaStore,
        *,
        ingestor: Ingestor,
        catalogue: CatalogueLoader,
        condenser: Any,
        make_extractive: Callable[[list[Chunk], SentenceIndex], ExtractiveAnswerer],
        llm_answerer: LLMAnswerer | None = None,
        guidance: GuidanceAnswerer | None = None,
    ) -> None:
        """Every collaborator is given (`build_advisor` makes them); the advisor owns only the
        loaded index and what is built from it per generation (retriever, extractive answerer)."""
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.ingestor = ingestor
        self.case_catalogue = catalogue
        self.condenser = condenser
        self.llm_answerer = llm_answerer
        self.guidance = guidance
        self._make_extractive = make_extractive
        self._lock = threading.RLock()
        self._snapshot: IndexSnapshot | None = None
        self._retriever: HybridRetriever | None = None
        self._extractive: ExtractiveAnswerer | None = None
        self._checked = 0.0
        self._unreadable = ""  # a published generation that could not be read (still serving the loaded one)

    # ---- index lifecycle -------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._snapshot is not None

    def load(self) -> bool:
        """Load the published index into memory; False when there is none yet, IndexDamagedError
        when its files cannot be read."""
        state = self.store.state()
        if state is None:
            return False
        self._check_encoder(state)
        chunks, vectors = self.store.load_chunk_vectors(state)
        sentences = self.store.load_sentences(state)
        snapshot = IndexSnapshot.build(state, chunks, vectors)
        s = self.settings
        with self._lock:
            self._snapshot = snapshot
            self._retriever = HybridRetriever(
                self.embedder,
                snapshot,
                s.k,
                s.candidates,
                s.rrf_k,
                s.max_per_document,
                sentences=sentences,
                rerank_pool=s.rerank_pool,
                sentence_weight=s.sentence_weight,
            )
            self._extractive = self._make_extractive(chunks, sentences)
            self._checked = time.monotonic()
        self.case_catalogue.reload()  # a broken catalogue is logged; the previous one keeps serving
        if self.guidance is not None:
            self.guidance.reload()  # likewise the guidance map
        return True

    def _check_encoder(self, state: IndexState) -> None:
        """IndexEncoderMismatchError when the index was embedded by another encoder than ours."""
        identity = self.embedder.encoder_identity
        if state.encoder_matches(identity):
            return
        built = state.encoder or "torch (an index from before encoders were recorded)"
        raise IndexEncoderMismatchError(
            f"The index {self.store.location} was built with the encoder {built}, but this advisor "
            f"encodes with {identity} (ADVISOR_ENCODER={self.settings.encoder}): vectors from "
            "different encoders are never mixed. Run `advisor ingest` to re-embed the corpus with "
            f"this encoder, or set ADVISOR_ENCODER to the one that built the index."
        )

    def ingest(self, paths=None, rebuild: bool = False, progress: Progress | None = None) -> IngestReport:
        """Build or refresh the index, then serve the new one."""
        report = self.ingestor.run(paths, rebuild=rebuild, progress=progress)
        if report.published or not self.ready:
            self.load()
        # the vectors of fixed texts the first questions compare with, embedded now and kept in
        # the data folder (advisor.vector_cache), so no first question pays for them (~7-10 s)
        catalogue = self.case_catalogue.current
        if catalogue is not None:
            catalogue.warm()
        if self.guidance is not None:
            self.guidance.warm()
        return report

    def ensure_index(self, progress: Progress | None = None) -> IngestReport | None:
        """Load the index, building it first when none exists and rebuilding it when it is damaged
        (`rebuild_damaged`); returns the build report if built."""
        if self.ready:
            return None
        try:
            if self.load():
                return None
        except IndexDamagedError as damage:
            if not self.settings.server_mode:
                log.warning("%s Rebuilding it from the corpus.", damage)
            return self.rebuild_damaged(damage, progress)
        return self.ingest(progress=progress)

    def rebuild_damaged(self, damage: IndexDamagedError, progress: Progress | None = None) -> IngestReport:
        """Rebuild a damaged embedded index from the corpus into a new generation, then serve it.

        The damaged generation stays beside the new one as its predecessor (the next ingest
        drops it). A damaged index on a Chroma server is not rebuilt but raised: the server's
        index is shared, and whoever runs it decides when to rebuild (`advisor ingest --rebuild`).
        """
        if self.settings.server_mode:
            raise damage
        return self.ingest(rebuild=True, progress=progress)

    def _refresh_if_republished(self) -> None:
        # Another process (an `advisor ingest`, a replica) may have published a new generation.
        now = time.monotonic()
        if now - self._checked < _FRESHNESS_SECONDS:
            return
        self._checked = now
        state = self.store.state()
        if state is None or state.generation == self._unreadable:
            return
        if self._snapshot is None or state.generation != self._snapshot.state.generation:
            log.info("index generation changed to %s; reloading", state.generation)
            try:
                self.load()
            except IndexDamagedError as exc:
                if self._snapshot is None:
                    raise
                # the loaded generation is whole and in memory: answer from it, say so once
                self._unreadable = state.generation
                log.error("%s Still answering from generation %s.", exc, self._snapshot.generation)

    @property
    def retriever(self) -> HybridRetriever:
        self._require_index()
        assert self._retriever is not None
        return self._retriever

    @property
    def index(self) -> IndexSnapshot:
        """The published index as loaded: its generation, chunks and vectors."""
        self._require_index()
        assert self._snapshot is not None
        return self._snapshot

    @property
    def extractive(self) -> ExtractiveAnswerer:
        self._require_index()
        assert self._extractive is not None
        return self._extractive

    def _require_index(self) -> None:
        if self._snapshot is None and not self.load():
            raise IndexMissingError("No index has been built yet: run `advisor ingest` first.")

    # ---- questions -------------------------------------------------------------------
    def condense(
        self, question: str, history: list[Any] | None = None, budget: ReplyBudget | None = None
    ) -> str:
        """The standalone query a (follow-up) question is searched with (an LLM's within `budget`)."""
        return self.condenser.condense(question, history, budget=budget)

    def warm_up(self) -> float:
        """Answer one question offline and drop the answer, before serving: the model, the
        question models and the guidance map's vectors (about 1,800 sentences, tens of seconds
        on two cores) are loaded then rather than by the first person to ask. Seconds taken."""
        if not self.ready:
            return 0.0
        started = time.perf_counter()
        llm, self.llm_answerer = self.llm_answerer, None  # not yet serving: nothing else reads it
        try:
            self.ask(WARM_UP_QUESTION)
        finally:
            self.llm_answerer = llm
        return time.perf_counter() - started

    def ask(
        self,
        question: str,
        history: list[Any] | None = None,
        filters: Filters | None = None,
        k: int | None = None,
        on_delta: Callable[[str], None] | None = None,
        use_catalogue: bool = True,
        use_guidance: bool = True,
    ) -> Answer:
        """Answer a question (with the conversation so far) from the indexed reports.

        `on_delta` is given the answer's text as it streams (`stream` has the same in order).
        """
        answer: Answer | None = None
        for event in self.stream(
            question,
            history=history,
            filters=filters,
            k=k,
            use_catalogue=use_catalogue,
            use_guidance=use_guidance,
        ):
            if isinstance(event, Answer):
                answer = event
            elif on_delta is not None:
                on_delta(event)
        assert answer is not None
        return answer

    def search(
        self,
        question: str,
        history: list[Any] | None = None,
        filters: Filters | None = None,
        k: int | None = None,
        question_vector: Any = None,
        budget: ReplyBudget | None = None,
    ) -> tuple[str, Any, list[Passage]]:
        """(standalone query, its vector, the retrieved passages): what every answerer reads.

        `question_vector`, the question's embedding, is reused when the query is the question."""
        query = self.condense(question, history, budget)
        if question_vector is not None and query == question:
            query_vector = question_vector
        else:
            query_vector = self.embedder.encode([query])[0]
        passages = self.retriever.retrieve(query, k=k, filters=filters, query_vector=query_vector)
        return query, query_vector, passages

    def stream(
        self,
        question: str,
        history: list[Any] | None = None,
        filters: Filters | None = None,
        k: int | None = None,
        use_catalogue: bool = True,
        use_guidance: bool = True,
    ) -> Iterator[str | Answer]:
        """Yield the answer's text as it is produced, then the finished `Answer`.

        A question across case studies is answered from the catalogue, one cited row per case,
        unless `use_catalogue` is off (the evaluation's passage-only comparison); an advice
        question a theme of the guidance map fits, from the map, unless `use_guidance` is off.
        """
        t0 = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        self._require_index()
        self._refresh_if_republished()
        # an LLM's time over this reply: its follow-up rewrite, answer, retries and streaming share it
        budget = ReplyBudget(self.settings.llm_timeout)
        vector = self.embedder.encode([question])[0]
        searched: list[tuple[str, Any, list[Passage]]] = []  # retrieved once, when first needed

        def search() -> tuple[str, Any, list[Passage]]:
            if not searched:
                searched.append(
                    self.search(question, history, filters, k, question_vector=vector, budget=budget)
                )
            return searched[0]

        def covered() -> bool:
            return self.extractive.covers(question, *search())

        catalogue = self.case_catalogue.current
        reading = catalogue.reading(question, vector) if catalogue is not None else None
        listed = None
        asks_cases = (
            use_catalogue and catalogue is not None and reading is not None and reading.query is not None
        )
        # with `route_coverage_gate`, a list, count or comparison must also pass the coverage
        # decision ("which DTAC sections do suppliers fill in?" is not about the case studies);
        # a "cases like mine" description has its own refusal when no case is like it
        if asks_cases and (
            reading.query.kind == "like" or not self.settings.route_coverage_gate or covered()
        ):
            listed = catalogue.answer_reading(question, reading, self.index, filters)
        # a question naming a catalogued case is about that case: its passages answer it, not the map
        names_case = reading is not None and bool(reading.names)
        if listed is None and use_guidance and self.guidance is not None and not names_case:
            advice = reading.probabilities.get("advice", 0.0) if reading is not None else 0.0
            # a follow-up is matched as its standalone query ("and for commissioners?"); a guidance
            # answer always passes the coverage decision, whatever `route_coverage_gate` says
            _, query_vector, _ = search()
            routed = self.guidance.decide(query_vector, advice)
            if routed is not None and routed.routed and covered():
                listed = self.guidance.answer(question, query_vector, self.index, filters, routed=routed)
        if listed is not None:
            yield listed.text
            elapsed = (time.perf_counter() - t0) * 1000
            yield _with_timings(listed, {"retrieve": elapsed, "answer": 0.0, "total": elapsed})
            return
        query, query_vector, passages = search()
        t1 = time.perf_counter()
        if self.llm_answerer is not None:
            answer = None
            stream = self.llm_answerer.stream(
                question, query, query_vector, passages, self.extractive, history, budget=budget
            )
            for event in stream:
                if isinstance(event, Answer):
                    answer = event
                else:
                    yield event
        else:
            answer = self.extractive.answer(question, query, query_vector, passages)
            for i, line in enumerate(answer.text.split("\n")):  # one point (or the refusal) at a time
                yield ("\n" if i else "") + line
        t2 = time.perf_counter()
        timings = {"retrieve": (t1 - t0) * 1000, "answer": (t2 - t1) * 1000, "total": (t2 - t0) * 1000}
        yield _with_timings(answer, timings)

    def guide(self, text: str) -> Answer:
        """What the guidance map advises on a theme (by id or title) or on the theme closest to
        a question, cited, whatever the route decision (`/advisor guidance`, the Guidance tab)."""
        t0 = time.perf_counter()
        text = clean_question(text, self.settings.max_question_chars)
        self._require_index()
        self._refresh_if_republished()
        if self.guidance is None or self.guidance.guidance.current is None:
            raise AdvisorError("The guidance map is not available; see the log for why.")
        vector = self.embedder.encode([text])[0]
        catalogue = self.case_catalogue.current
        reading = catalogue.reading(text, vector) if catalogue is not None else None
        advice = reading.probabilities.get("advice", 0.0) if reading is not None else 0.0
        answer = self.guidance.about(text, vector, self.index, advice)
        if answer is None:
            raise AdvisorError("No point of the guidance map could be cited from the published index.")
        elapsed = (time.perf_counter() - t0) * 1000
        return _with_timings(answer, {"retrieve": elapsed, "answer": 0.0, "total": elapsed})

    def cases_like_mine(self, situation: str, filters: Filters | None = None) -> Answer:
        """The case studies most like a described situation, from the catalogue, cited."""
        t0 = time.perf_counter()
        situation = clean_question(situation, self.settings.max_question_chars)
        self._require_index()
        self._refresh_if_republished()
        catalogue = self.case_catalogue.current
        if catalogue is None:
            raise AdvisorError("The case-study catalogue is not available; see the log for why.")
        answer = catalogue.like_answer(situation, self.index, filters)
        elapsed = (time.perf_counter() - t0) * 1000
        return _with_timings(answer, {"retrieve": elapsed, "answer": 0.0, "total": elapsed})

    # ---- what is indexed -------------------------------------------------------------
    def sources(self) -> list[DocumentSummary]:
        """The indexed reports with their case studies and chunk counts."""
        self._require_index()
        assert self._snapshot is not None
        out: dict[str, DocumentSummary] = {}
        for chunk in self._snapshot.chunks:
            summary = out.get(chunk.source)
            if summary is None:
                summary = DocumentSummary(
                    source=chunk.source,
                    title=chunk.title,
                    publisher=str(chunk.meta.get("publisher", "")),
                    year=int(chunk.meta.get("year", 0) or 0),
                    chunks=0,
                    case_studies={},
                )
            cases = dict(summary.case_studies)
            if chunk.case_study:
                cases[chunk.case_study] = cases.get(chunk.case_study, 0) + 1
            out[chunk.source] = DocumentSummary(
                summary.source, summary.title, summary.publisher, summary.year, summary.chunks + 1, cases
            )
        return sorted(out.values(), key=lambda d: (-d.year, d.title))

    def case_study_names(self) -> list[str]:
        """Every case study named in the index."""
        return sorted({name for doc in self.sources() for name in doc.case_studies})


def _with_timings(answer: Answer, timings: dict[str, float]) -> Answer:
    from dataclasses import replace

    return replace(answer, timings_ms=timings)


def load_coverage_model(path: Path | None) -> CoverageModel | None:
    """The calibrated coverage decision, or None when switched off (the older floors decide)."""
    if not path or not str(path).strip() or not Path(path).is_file():
        if path and str(path).strip():
            log.warning("coverage model %s not found; refusing by the similarity floors", path)
        return None
    try:
        return CoverageModel.load(Path(path))
    except (ValueError, KeyError, TypeError) as exc:  # a model from other features, or a damaged file
        log.warning(
            "coverage model %s unusable (%s); refusing by the similarity floors; run `advisor calibrate`",
            path,
            exc,
        )
        return None


def case_names(corpus_dir: Path) -> dict[str, tuple[str, ...]]:
    """Case study names and aliases from the corpus manifest (for reading questions)."""
    try:
        manifest = Manifest.load(corpus_dir)
    except AdvisorError as exc:
        log.warning("case study names unavailable: %s", exc)
        return {}
    return {c.name: c.aliases for e in manifest.entries.values() for c in e.case_studies}


def extractive_factory(
    settings: Settings, embedder: Embedder
) -> Callable[[list[Chunk], SentenceIndex], ExtractiveAnswerer]:
    """How the advisor builds its extractive answerer for each index generation it loads."""
    coverage = load_coverage_model(settings.coverage_model)
    s = settings

    def make(chunks: list[Chunk], sentences: SentenceIndex) -> ExtractiveAnswerer:
        return ExtractiveAnswerer(
            sentences,
            max_sentences=s.answer_sentences,
            refusal_threshold=s.refusal_threshold,
            unknown_terms_threshold=s.unknown_terms_threshold,
            terms=ReportTerms.from_chunks(chunks),
            rare_term_passages=s.rare_term_passages,
            coverage=coverage,
            case_names=case_names(s.corpus_dir),
            encode=embedder.encode,
            specificity_weight=s.specificity_weight,
            advice_points=s.advice_points,
            name_mask_weight=s.name_mask_weight,
        )

    return make


def build_advisor(
    settings: Settings | None = None,
    *,
    load: bool = True,
    embedder: Embedder | None = None,
    chat_model: Any = None,
) -> Advisor:
    """Wire the advisor's stages from settings (the one place that does so).

    An already loaded `embedder` may be passed in so several advisors in one process (tests,
    the web page beside the Slack bot) share one model; `chat_model` replaces the configured
    LLM backend's client (tests pass LangChain's fake chat models).
    """
    force_offline()
    # The query path's numpy work is small matrix-vector products; OpenBLAS threads left spinning
    # after them slow the encoder's next forward pass on a 2-core machine (README, "Speed").
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    settings = settings or Settings()
    embedder = embedder or make_embeddings(settings)
    store = ChromaStore(settings)
    condenser: Any = RuleBasedCondenser()
    llm_answerer = None
    if chat_model is not None or settings.llm_backend != "extractive":
        # imported here: the offline path never loads the LLM clients
        from advisor.chain import LLMAnswerer, LLMCondenser
        from advisor.llm import build_chat_model

        model = chat_model if chat_model is not None else build_chat_model(settings)
        if model is not None:
            llm_answerer = LLMAnswerer(model, settings, embedder)
            if settings.llm_condense:
                condenser = LLMCondenser(model, settings.llm_timeout, RuleBasedCondenser())
    advisor = Advisor(
        settings,
        embedder,
        store,
        ingestor=Ingestor(settings, embedder, store),
        catalogue=CatalogueLoader(
            settings.corpus_dir, embedder, settings.case_question_model, cache_dir=settings.data_dir
        ),
        condenser=condenser,
        make_extractive=extractive_factory(settings, embedder),
        llm_answerer=llm_answerer,
        guidance=GuidanceAnswerer(
            Guidance(settings.corpus_dir),
            embedder,
            settings.guidance_route_model,
            settings.guidance_points,
            cache_dir=settings.data_dir,
        ),
    )
    if load:
        try:
            advisor.load()
        except IndexDamagedError as exc:  # the front end rebuilds it (`ensure_index`) or says so
            log.warning("%s", exc)
    return advisor
