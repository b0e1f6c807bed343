"""The LLM answer path: a LangChain (LCEL) chain whose every sentence is checked against its sources.

question (+ history) --condense--> query --retrieve--> Passage[] --format numbered sources-->
prompt --model (streamed)--> text --parse [n] + verify (advisor.citations)--> Answer

`Advisor.stream` runs the first two steps itself (so filters and the index's freshness apply
alike to every backend): `LLMCondenser` is its condenser and `LLMAnswerer.stream` its answer
step; `build_advisor` wires both when an LLM backend is configured.

Trust comes first. The extractive answerer's refusal gate runs before the model is asked, so
an out-of-scope question is never answered by the model; every generated sentence is labelled
supported / unsupported / uncited; markers naming no source are removed and reported; and any
failure (server down, slow, rate-limited, empty or unsupported reply) returns the extractive
answer with a visible note instead of an error.

Time is bounded per reply, not per call: `Advisor.stream` gives both steps one `ReplyBudget`
of `llm_timeout` seconds, and the follow-up rewrite, every attempt, the pauses between them and
the stream itself all spend from it. Why a reply fell back is summarised (a kind and a status,
never the server's own words); the full error goes to the log.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from langchain_core.exceptions import ModelConnectionError, ModelTimeoutError
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from advisor.answer import ExtractiveAnswerer
from advisor.citations import CitationVerifier, apply_policy
from advisor.condense import RuleBasedCondenser, message_text, user_turns
from advisor.config import Settings
from advisor.llm import ReplyBudget
from advisor.prompts import prompt_template
from advisor.text import tokenize
from advisor.types import Answer, Fallback, Passage

log = logging.getLogger(__name__)

UNAVAILABLE_NOTE = "The language model was unavailable, so this answer quotes the reports directly."
UNSUPPORTED_NOTE = (
    "The language model's answer was not supported by the reports it cited, "
    "so this answer quotes the reports directly."
)
_NO_RETRY_STATUS = {400, 401, 403, 404, 422}  # retrying cannot fix these
_HISTORY_MESSAGES = 6
_HISTORY_CHARS = 400
_MAX_QUERY_CHARS = 300
_LOGGED_ERROR_CHARS = 500  # an upstream error page can be kilobytes of HTML
_CONDENSE_SHARE = 0.5  # of the reply's time left: the rewrite must leave the answer time too


# ---- prompts ---------------------------------------------------------------------------
def format_sources(passages: list[Passage] | tuple[Passage, ...]) -> str:
    """The passages as numbered `<source id="n">` blocks; tags inside a passage are defused."""
    blocks = []
    for n, passage in enumerate(passages, start=1):
        c = passage.chunk
        year = c.meta.get("year") or ""
        publisher = c.meta.get("publisher") or ""
        origin = ", ".join(str(x) for x in (publisher, year) if x)
        lines = [f'<source id="{n}">', f"report: {c.title}" + (f" ({origin})" if origin else "")]
        if c.section:
            lines.append(f"section: {c.section}")
        if c.case_study:
            lines.append(f"case study: {c.case_study}")
        lines.append(f"text: {_defuse(c.text)}")
        lines.append("</source>")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def _defuse(text: str) -> str:
    # A document must not be able to close its own <source> block and talk as the prompt.
    return re.sub(r"</?\s*sources?\b[^>]*>", "[tag removed]", text, flags=re.IGNORECASE)


# What the chains fill in each prompt; `prompt_template` holds the files to exactly these.
ANSWER_SYSTEM_VARIABLES = frozenset({"max_sentences"})
ANSWER_VARIABLES = frozenset({"sources", "question", "standalone"})
CONDENSE_VARIABLES = frozenset({"history", "question"})


def answer_prompt(system_role: bool = True) -> ChatPromptTemplate:
    """prompts/answer_system.txt + prompts/answer.txt, as system + user (or one user turn)."""
    system = prompt_template("answer_system", ANSWER_SYSTEM_VARIABLES)
    user = prompt_template("answer", ANSWER_VARIABLES)
    if system_role:
        return ChatPromptTemplate.from_messages([("system", system), ("human", user)])
    return ChatPromptTemplate.from_messages([("human", f"{system}\n\n{user}")])


def condense_prompt() -> ChatPromptTemplate:
    """prompts/condense.txt as one user turn."""
    return ChatPromptTemplate.from_messages([("human", prompt_template("condense", CONDENSE_VARIABLES))])


def format_history(history: list[Any] | None) -> str:
    """The last few turns as `User: ...` / `Assistant: ...` lines, each shortened."""
    lines: list[str] = []
    for item in history or []:
        if isinstance(item, dict):
            role, content = item.get("role"), message_text(item.get("content"))
            lines.append(f"{'User' if role == 'user' else 'Assistant'}: {content}")
        elif isinstance(item, (list, tuple)) and item:
            lines.append(f"User: {message_text(item[0])}")
            if len(item) > 1 and item[1]:
                lines.append(f"Assistant: {message_text(item[1])}")
    lines = [re.sub(r"\s+", " ", line)[:_HISTORY_CHARS] for line in lines[-_HISTORY_MESSAGES:]]
    return "\n".join(lines)


# ---- bounded calls ---------------------------------------------------------------------
def bounded_stream(runnable: Runnable, inputs: dict, deadline: float) -> Iterator[str]:
    """Stream `runnable`, but give up (TimeoutError) when the reply is not done by `deadline`
    (a `time.monotonic()` value).

    The client's own timeout only bounds each wait between bytes; a server that trickles
    tokens (or keep-alives) forever would hold the user forever. The stream runs in a worker
    thread so this wait is a hard bound. A worker left waiting on a hung server stops at its
    client's timeout, or at the next chunk it receives.
    """
    if time.monotonic() >= deadline:
        raise TimeoutError("no time left for a reply")  # so nothing is sent
    events: queue.Queue = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in runnable.stream(inputs):
                if stop.is_set():
                    return
                events.put(("delta", chunk))
            events.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which decides
            events.put(("error", exc))

    worker = threading.Thread(target=produce, name="advisor-llm-stream", daemon=True)
    worker.start()
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                kind, value = events.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError("no complete reply before the deadline") from None
            if kind == "delta":
                yield value
            elif kind == "end":
                return
            else:
                raise value
    finally:
        stop.set()


def server_name(settings: Settings) -> str:
    """Where the LLM backend runs, as `scheme://host:port` (no credentials, path or query)."""
    if settings.llm_backend == "llamacpp":
        return "the in-process model"
    default = "https://api.openai.com" if settings.llm_backend == "openai" else "http://127.0.0.1:11434"
    parts = urlsplit(settings.llm_base_url or default)
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is not a number
        port = ""
    return f"{parts.scheme or 'http'}://{host}{port}"


def summarise_failure(exc: BaseException, timeout: float, server: str) -> str:
    """Why an LLM call failed, for the user: its kind and any HTTP status, never the server's
    own words (an error page can carry paths, traces and whatever the request held)."""
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and 100 <= status <= 599:
        return f"the LLM server answered HTTP {status}"
    causes = _causes(exc)
    if any(isinstance(e, (TimeoutError, ModelTimeoutError)) or _named(e, "Timeout") for e in causes):
        return timed_out(timeout)
    if any(isinstance(e, ConnectionRefusedError) or _named(e, "ConnectError") for e in causes):
        return f"could not connect to {server}"
    if any(
        isinstance(e, (ConnectionError, ModelConnectionError)) or _named(e, "TransportError") for e in causes
    ):
        return f"the connection to {server} failed"
    return f"the LLM call failed ({type(exc).__name__})"[:120]


def timed_out(timeout: float) -> str:
    """The fallback detail when the reply's time ran out."""
    return f"timed out: no complete reply within {timeout:g} s"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from or while handling: clients wrap transport
    errors two or three deep, and some hide the first behind `from None`."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _named(exc: BaseException, name: str) -> bool:
    # by class name: the HTTP clients' own errors (httpx's ReadTimeout, ConnectError, and those
    # of the forks some SDKs vendor) without importing each client
    return any(name in cls.__name__ for cls in type(exc).__mro__)


def _retryable(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    return status not in _NO_RETRY_STATUS


def _is_empty_stream(exc: BaseException) -> bool:
    """langchain-core raises this when a model streams nothing at all: an empty reply, not an outage."""
    return isinstance(exc, ValueError) and "No generation chunks were returned" in str(exc)


def _logged(exc: BaseException) -> str:
    """The whole error on one line, shortened, for the log (not for the user)."""
    text = " ".join(str(exc).split())
    if len(text) > _LOGGED_ERROR_CHARS:
        text = text[:_LOGGED_ERROR_CHARS] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---- condense --------------------------------------------------------------------------
class LLMCondenser:
    """Rewrites a follow-up into a standalone query with the LLM; rule-based when that fails.

    The model is asked only when there is history. Its reply is used only when it looks like a
    query (one line, not too long, sharing a content word with the conversation); otherwise,
    and on any error or timeout, the rule-based condenser's query is used. It takes at most half
    the reply's time left (its `ReplyBudget`), so the answer keeps the rest.
    """

    def __init__(
        self,
        model: BaseChatModel,
        timeout: float = 30.0,
        fallback: RuleBasedCondenser | None = None,
    ) -> None:
        self.fallback = fallback or RuleBasedCondenser()
        self.timeout = timeout
        self.chain = condense_prompt() | model | StrOutputParser()

    def condense(
        self, question: str, history: list[Any] | None = None, budget: ReplyBudget | None = None
    ) -> str:
        """The standalone query to search with, within the reply's `budget` when given."""
        rule_based = self.fallback.condense(question, history)
        if not user_turns(history):
            return rule_based
        inputs = {"history": format_history(history), "question": question}
        # within a reply, the rewrite leaves the answer at least half the time; alone, it has all
        share = _CONDENSE_SHARE if budget is not None else 1.0
        try:
            with (budget or ReplyBudget(self.timeout)).spend(share) as deadline:
                reply = "".join(bounded_stream(self.chain, inputs, deadline))
        except Exception as exc:  # noqa: BLE001 - any client failure: fall back to the rules
            log.warning("LLM condense failed (%s); using the rule-based query", _logged(exc))
            return rule_based
        query = self._clean(reply)
        context = set(tokenize(question + " " + " ".join(user_turns(history))))
        if not query or not (set(tokenize(query)) & context):
            log.info("LLM condense reply not usable as a query: %r", reply[:200])
            return rule_based
        return query

    @staticmethod
    def _clean(reply: str) -> str:
        lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
        if not lines:
            return ""
        query = re.sub(r"^(standalone (search )?(query|question)\s*:\s*)", "", lines[0], flags=re.IGNORECASE)
        query = query.strip().strip("\"'“”‘’`").strip()
        if len(query) < 3 or len(query) > _MAX_QUERY_CHARS or "[" in query:
            return ""
        return query


# ---- answer ----------------------------------------------------------------------------
class LLMAnswerer:
    """Generates a cited answer with a chat model, streams it, and verifies every sentence.

    `stream(...)` yields text deltas as the model produces them, then the finished `Answer`
    (backend, per-sentence verdicts, one citation per valid marker, fallback and notes).
    It is given the extractive answerer of the index the passages came from: its coverage
    decision runs first and its answer is the fallback. The model's time is bounded by the
    reply's `ReplyBudget` (`llm_timeout` seconds), retries, pauses and streaming included.
    """

    def __init__(
        self,
        model: BaseChatModel,
        settings: Settings,
        embedder,
        backend: str | None = None,
    ) -> None:
        self.model = model
        self.settings = settings
        self.embedder = embedder
        self.backend = backend or settings.llm_backend
        self.timeout = settings.llm_timeout
        self.retries = settings.llm_max_retries
        self.server = server_name(settings)
        self.max_sentences = max(settings.answer_sentences + 2, 4)
        self.generate: Runnable = (
            RunnablePassthrough.assign(sources=lambda x: format_sources(x["passages"]))
            | RunnableLambda(self._prompt_inputs)
            | answer_prompt(settings.llm_system_role)
            | model
            | StrOutputParser()
        ).with_config(run_name="advisor_generate")

    def _prompt_inputs(self, x: dict) -> dict:
        standalone = x.get("query") or ""
        extra = (
            f"\n(Standalone form of the question: {standalone})"
            if standalone and standalone != x["question"]
            else ""
        )
        return {
            "sources": x["sources"],
            "question": x["question"],
            "standalone": extra,
            "max_sentences": self.max_sentences,
        }

    def verifier(self, extractive: ExtractiveAnswerer) -> CitationVerifier:
        """A verifier over the index's precomputed sentence vectors."""
        return CitationVerifier(self.embedder, extractive.sentences)

    def answer(
        self,
        question: str,
        query: str,
        query_vector,
        passages: list[Passage],
        extractive: ExtractiveAnswerer,
        history=None,
        budget: ReplyBudget | None = None,
    ) -> Answer:
        """The finished answer (the stream consumed)."""
        result = None
        for event in self.stream(question, query, query_vector, passages, extractive, history, budget):
            if isinstance(event, Answer):
                result = event
        assert result is not None
        return result

    def stream(
        self,
        question: str,
        query: str,
        query_vector,
        passages: list[Passage],
        extractive_answerer: ExtractiveAnswerer,
        history=None,
        budget: ReplyBudget | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the model's text as it streams, then the verified `Answer`; the model gets what
        is left of the reply's `budget` (all of `llm_timeout` when none is given)."""
        extractive = extractive_answerer.answer(question, query, query_vector, passages)
        if extractive.refused:
            yield extractive.text
            yield replace(
                extractive,
                backend=self.backend,
                fallback=Fallback(
                    "not_covered",
                    "the retrieved passages do not cover the question, so the model was not asked",
                ),
            )
            return

        inputs = {"question": question, "query": query, "passages": list(passages)}
        parts: list[str] = []
        with (budget or ReplyBudget(self.timeout)).spend() as deadline:
            failure = yield from self._attempts(inputs, deadline, parts)

        if failure is not None:
            yield from self._fallback(extractive, failure, UNAVAILABLE_NOTE, streamed=bool(parts))
            return

        verification = self.verifier(extractive_answerer).verify("".join(parts), passages)
        s = self.settings
        result = apply_policy(verification, s.verify_policy, s.verify_min_supported)
        if result.fallback is not None:
            yield from self._fallback(
                extractive, result.fallback, UNSUPPORTED_NOTE, streamed=True, notes=result.notes
            )
            return
        yield Answer(
            question=question,
            query=query,
            text=result.text,
            citations=result.citations,
            passages=tuple(passages),
            refused=verification.declined,
            sentences=result.sentences,
            backend=self.backend,
            fallback=None,
            notes=result.notes,
            analysis=extractive.analysis,  # how the question was read and why it was not refused
        )

    def _attempts(
        self, inputs: dict, deadline: float, parts: list[str]
    ) -> Generator[str, None, Fallback | None]:
        """Ask the model, retrying while time is left; yields its text (kept in `parts`) and
        returns why it failed, or None."""
        failure: Fallback | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                pause = min(0.5 * 2 ** (attempt - 1), 4.0)
                if time.monotonic() + pause >= deadline:
                    break  # no time for another attempt: the last failure stands
                time.sleep(pause)
            if time.monotonic() >= deadline:  # the rewrite of a follow-up used the time up
                return Fallback("llm_unavailable", timed_out(self.timeout))
            try:
                for delta in bounded_stream(self.generate, inputs, deadline):
                    if delta:
                        parts.append(delta)
                        yield delta
                failure = (
                    None if "".join(parts).strip() else Fallback("empty", "the model returned an empty reply")
                )
            except Exception as exc:  # noqa: BLE001 - any client failure falls back, with its reason
                if not parts and _is_empty_stream(exc):
                    failure = Fallback("empty", "the model returned an empty reply")
                else:
                    failure = Fallback("llm_unavailable", summarise_failure(exc, self.timeout, self.server))
                log.warning("LLM attempt %d failed: %s", attempt + 1, _logged(exc))
                if parts or not _retryable(exc):
                    break  # text already shown cannot be taken back; some errors never heal
            if failure is None or parts:
                break
        return failure

    def _fallback(
        self, extractive: Answer, reason: Fallback, note: str, streamed: bool, notes: tuple[str, ...] = ()
    ) -> Iterator[str | Answer]:
        log.warning("returning the extractive answer: %s", reason)
        # Streamed model text cannot be unsaid: say plainly that what follows replaces it.
        yield (f"\n\n{note}\n\n" if streamed else "") + extractive.text
        yield replace(extractive, backend=self.backend, fallback=reason, notes=(note, *notes))
