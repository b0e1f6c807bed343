"""The web page (Gradio): chat with the advisor and see the evidence behind every sentence.

Answers stream in sentence by sentence; every marker in an answer is drawn from
`Answer.citations` (never parsed from text) and the evidence panel shows each cited passage
with its report, publisher, year, section and case study, the quoted sentence highlighted.
Follow-ups are condensed with the conversation, filters restrict the search, and thumbs
up/down with a comment go to the durable feedback store. Nothing is fetched from outside:
analytics off, no share link, system fonts only.
"""

from __future__ import annotations

import html
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from advisor.advisor import Advisor
from advisor.condense import message_text
from advisor.config import Settings, force_offline
from advisor.errors import AdvisorError, ConfigError
from advisor.feedback import FeedbackStore
from advisor.types import Answer, Filters

log = logging.getLogger(__name__)

_TAGS = re.compile(r"<[^>]+>")


def _escape(text: str) -> str:
    """Text as HTML text (never markup); quotes stay as they are, so copied text reads right."""
    return html.escape(text, quote=False)

UNEXPECTED = "Sorry, something went wrong while answering. Please try again; the problem has been logged."

EXAMPLES = [
    "How did other innovators persuade late adopters to take up their product?",
    "What role do clinical champions play in spreading an innovation?",
    "What evidence do NHS adopters want before taking up an innovation?",
    "What makes a good pilot of a technology-enabled service change?",
    "How did the DAFNE programme spread across the NHS?",
]

CSS = """
.evidence details.cite { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 8px 12px; margin: 0 0 10px 0; background: var(--background-fill-secondary); }
.evidence summary { cursor: pointer; list-style: none; }
.evidence summary::-webkit-details-marker { display: none; }
.evidence .marker { display: inline-block; min-width: 1.8em; font-weight: 700;
  color: var(--color-accent); }
.evidence .where { color: var(--body-text-color-subdued); font-size: 0.9em; }
.evidence .quote { margin-top: 6px; font-style: italic; }
.evidence .passage { margin-top: 8px; padding-top: 8px; border-top: 1px dashed var(--border-color-primary);
  white-space: pre-wrap; font-size: 0.92em; line-height: 1.45; }
.evidence mark { background: #fde68a; color: inherit; padding: 0 2px; border-radius: 2px; }
.evidence .flag { color: #b91c1c; font-weight: 600; }
.evidence .hint, .library .hint { color: var(--body-text-color-subdued); font-size: 0.9em; }
.library table { border-collapse: collapse; width: 100%; border: none !important; }
.library th, .library td { border: none !important; border-bottom: 1px solid var(--border-color-primary) !important;
  padding: 10px 12px; text-align: left; vertical-align: top; }
.library th { color: var(--body-text-color-subdued); font-weight: 600; }
.library code { font-size: 0.85em; color: var(--body-text-color-subdued); }
#feedback-status { padding: 0 10px; }
sup.cite-marker { color: var(--color-accent); font-weight: 700; }
"""


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """`user:password,user2:password2` -> [(user, password), ...]; None when unset."""
    if not value:
        return None
    pairs = []
    for item in value.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ConfigError("ADVISOR_UI_AUTH must look like 'user:password,user2:password2'")
        pairs.append((user, password))
    return pairs


@dataclass
class IndexBuilder:
    """Builds the index in the background on first run, so the page can open at once."""

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
        """A line for the top of the page while the index is not ready."""
        if self.error:
            return f"**The library could not be built:** {_escape(self.error)}"
        progress = f" ({self.done}/{self.total})" if self.total else ""
        return (
            f"**Building the library of reports** - {_escape(self.stage.lower())}{progress}. "
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


# ---- rendering ---------------------------------------------------------------------
def render_answer_markdown(answer: Answer) -> str:
    """The answer for the chat bubble: each sentence with its citation markers."""
    if answer.refused or not answer.sentences:
        body = _escape(answer.text)
    else:
        parts = []
        for sentence in answer.sentences:
            markers = "".join(f"<sup class='cite-marker'>[{m}]</sup>" for m in sentence.markers)
            text = _escape(sentence.text)
            if sentence.verdict != "supported":
                text = f"{text} <em>({sentence.verdict})</em>"
            parts.append(f"{text}{markers}")
        body = " ".join(parts)
    notes = "".join(f"\n\n<em>{_escape(n)}</em>" for n in answer.notes)
    return body + notes


def _highlight(passage: str, quote: str) -> str:
    start = passage.find(quote)
    if start < 0:
        return _escape(passage)
    end = start + len(quote)
    return (
        _escape(passage[:start]) + "<mark>" + _escape(quote) + "</mark>" + _escape(passage[end:])
    )


def render_evidence(answer: Answer | None) -> str:
    """The sources panel: one card per citation, its passage one click away."""
    if answer is None:
        return "<div class='evidence'><p class='hint'>Ask a question: the passages behind every sentence of the answer appear here.</p></div>"
    cards = []
    if answer.citations:
        for citation in answer.citations:
            r = citation.to_record()
            where = " › ".join(_escape(x) for x in (r["section"], r["case_study"]) if x)
            meta = " · ".join(_escape(str(x)) for x in (r["publisher"], r["year"]) if x)
            page = f" · p. {r['page']}" if r.get("page") else ""
            cards.append(
                f"<details class='cite' id='cite-{citation.marker}'>"
                f"<summary><span class='marker'>[{citation.marker}]</span> "
                f"<b>{_escape(r['title'])}</b><br><span class='where'>{meta}{page}"
                f"{' · ' + where if where else ''}</span>"
                f"<div class='quote'>“{_escape(citation.quote)}”</div></summary>"
                f"<div class='passage'>{_highlight(citation.passage.chunk.text, citation.quote)}</div>"
                "</details>"
            )
        header = "<p class='hint'>Click a source to read the whole passage; the quoted sentence is highlighted.</p>"
    else:
        header = "<p class='hint'>No passage answers this closely enough. The closest ones:</p>"
        for p in answer.passages[:3]:
            c = p.chunk
            where = " · ".join(
                _escape(str(x)) for x in (c.meta.get("publisher"), c.meta.get("year"), c.section, c.case_study) if x
            )
            cards.append(
                f"<details class='cite'><summary><b>{_escape(c.title)}</b><br>"
                f"<span class='where'>{where}</span></summary>"
                f"<div class='passage'>{_escape(c.text)}</div></details>"
            )
    flags = [s for s in answer.sentences if s.verdict != "supported"]
    if flags:
        header += "".join(
            f"<p class='flag'>Not supported by its sources ({s.verdict}): {_escape(s.text)}</p>" for s in flags
        )
    return "<div class='evidence'>" + header + "".join(cards) + "</div>"


def render_corpus(advisor: Advisor) -> str:
    """The library tab: each report with its metadata and case studies."""
    if not advisor.ready:
        return "<p>The library is being built.</p>"
    rows = []
    for doc in advisor.sources():
        cases = ", ".join(_escape(c) for c in sorted(doc.case_studies)) or "<span class='hint'>none named</span>"
        rows.append(
            f"<tr><td><b>{_escape(doc.title)}</b><br><code>{_escape(doc.source)}</code></td>"
            f"<td>{_escape(doc.publisher)}</td><td>{doc.year or ''}</td><td>{doc.chunks}</td>"
            f"<td>{cases}</td></tr>"
        )
    return (
        "<div class='library'><p>The advisor answers only from these reports; a question about anything"
        " else is declined rather than guessed.</p>"
        "<table><thead><tr><th>Report</th><th>Publisher</th><th>Year</th><th>Passages</th>"
        "<th>Case studies</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
    )


def shown_question(question: str, limit: int = 600) -> str:
    """The question as its chat bubble shows it: escaped (markup is text), long pastes cut."""
    if not question:
        return "<em>(empty question)</em>"
    if len(question) > limit:
        return _escape(question[:limit]) + f"… <em>({len(question):,} characters)</em>"
    return _escape(question)


def plain_history(history: list[dict[str, Any]], answers: dict[str, Any]) -> list[dict[str, str]]:
    """The chat as plain text for the advisor: user questions unescaped, answers without markup."""
    plain = []
    for i, message in enumerate(history):
        role = message.get("role")
        record = answers.get(str(i)) if role == "assistant" else None
        if record:
            text = record.get("answer", "")
        else:
            text = html.unescape(_TAGS.sub("", message_text(message.get("content"))))
        plain.append({"role": role, "content": text})
    return plain


def _searched(answer: Answer) -> str:
    if answer.query and answer.query != answer.question:
        return f"**Searched for:** {_escape(answer.query)}"
    return ""


# ---- the app -----------------------------------------------------------------------
def build_ui(advisor: Advisor, settings: Settings, feedback: FeedbackStore, builder: IndexBuilder | None = None):
    """The Gradio Blocks app around one advisor and one feedback store."""
    force_offline()
    import gradio as gr

    builder = builder or IndexBuilder(advisor)

    def filter_choices():
        if not advisor.ready:
            return [], []
        docs = [(d.title, d.source) for d in advisor.sources()]
        return docs, advisor.case_study_names()

    def respond(message, history, sources, cases, answers) -> Iterator[tuple]:
        question = message_text(message).strip() if message is not None else ""
        history = list(history or [])
        answers = dict(answers or {})
        earlier = plain_history(history, answers)
        history = history + [{"role": "user", "content": shown_question(question)}]
        if not advisor.ready:
            history.append({"role": "assistant", "content": builder.status()})
            yield history, render_evidence(None), "", answers, ""
            return
        yield history, gr.skip(), "", answers, ""  # the question shows at once, the box empties
        filters = Filters(sources=tuple(sources or ()), case_studies=tuple(cases or ()))
        streamed = ""
        try:
            for event in advisor.stream(question, history=earlier, filters=filters or None):
                if isinstance(event, Answer):
                    answer = event
                    break
                streamed += event
                partial = history + [{"role": "assistant", "content": _escape(streamed)}]
                yield partial, gr.skip(), gr.skip(), answers, ""
        except AdvisorError as exc:  # a bad question, a missing index, an LLM that is down
            history.append({"role": "assistant", "content": _escape(str(exc))})
            yield history, gr.skip(), "", answers, ""
            return
        except Exception:  # the edge: one user's failure must not take the page down
            log.exception("answering %r failed", question[:200])
            history.append({"role": "assistant", "content": UNEXPECTED})
            yield history, gr.skip(), "", answers, ""
            return
        history.append({"role": "assistant", "content": render_answer_markdown(answer)})
        answers[str(len(history) - 1)] = answer.to_record()
        answers["latest"] = answer.to_record()
        yield history, render_evidence(answer), _searched(answer), answers, ""

    def store_feedback(verdict: str, comment: str, record: dict | None):
        if not record:
            return "Ask a question first: feedback is about an answer.", gr.skip()
        feedback_id = feedback.record("web", record["question"], record, verdict, comment or "")
        label = "helpful" if verdict == "up" else "not helpful"
        return f"Thank you: feedback #{feedback_id} saved ({label}).", ""

    def on_latest(verdict: str):
        return lambda comment, answers: store_feedback(verdict, comment, (answers or {}).get("latest"))

    def on_like(data: gr.LikeData, comment: str, answers: dict):
        if not isinstance(data.liked, bool):  # a thumb clicked off again: nothing to store
            return gr.skip(), gr.skip()
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        record = (answers or {}).get(str(index))
        if record is None:
            return "Only answers can be rated; this message is not one.", gr.skip()
        return store_feedback("up" if data.liked else "down", comment, record)

    on_like.__annotations__["data"] = gr.LikeData  # gradio reads the type, not its name

    def new_conversation():
        return [], render_evidence(None), "", {}, "", ""

    def refresh():
        docs, cases = filter_choices()
        banner = "" if advisor.ready else builder.banner()
        return gr.update(choices=docs), gr.update(choices=cases), render_corpus(advisor), banner

    def poll_build():
        if advisor.ready:  # built: fill the filters and the library, stop polling
            return (*refresh(), gr.Timer(active=False))
        return gr.skip(), gr.skip(), gr.skip(), builder.banner(), gr.skip()

    with gr.Blocks(title="Spread Advisor", analytics_enabled=False, fill_height=True) as demo:
        answers = gr.State({})
        gr.Markdown(
            "## Spread Advisor\nEvidence-based answers on scaling and spreading innovation in the NHS, "
            "quoted from five public reports. Every sentence cites the passage it comes from."
        )
        build_status = gr.Markdown("" if advisor.ready else builder.banner(), elem_id="build-status")
        build_timer = gr.Timer(2, active=not advisor.ready)
        with gr.Tab("Ask"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Conversation",
                        show_label=False,  # the floating label covers the first line when scrolled
                        height=520,
                        sanitize_html=True,
                        render_markdown=True,
                        feedback_options=("Like", "Dislike"),
                        buttons=["copy", "copy_all"],  # no "share" (it posts to an outside site)
                        elem_id="chat",
                    )
                    searched = gr.Markdown(elem_id="searched")
                    with gr.Row():
                        question = gr.Textbox(
                            placeholder="Ask about scaling an innovation in the NHS...",
                            show_label=False,
                            scale=5,
                            elem_id="question",
                            autofocus=True,
                        )
                        send = gr.Button("Ask", variant="primary", scale=1, elem_id="send")
                    with gr.Row():
                        clear = gr.Button("New conversation", size="sm", elem_id="new-conversation")
                    with gr.Accordion("Filters: restrict to reports or case studies", open=False):
                        docs, cases = filter_choices()
                        doc_filter = gr.Dropdown(docs, multiselect=True, label="Reports", elem_id="doc-filter")
                        case_filter = gr.Dropdown(cases, multiselect=True, label="Case studies", elem_id="case-filter")
                    gr.Examples(EXAMPLES, inputs=[question], label="Try one of these")
                with gr.Column(scale=2):
                    gr.Markdown("### Evidence")
                    evidence = gr.HTML(render_evidence(None), elem_id="evidence")
                    with gr.Group():
                        comment = gr.Textbox(
                            label="Comment (optional), sent with your rating",
                            placeholder="What was missing or wrong? Rate with the thumbs under an answer, "
                            "or the buttons below for the latest one.",
                            lines=2,
                            elem_id="comment",
                        )
                        with gr.Row():
                            up = gr.Button("Helpful", size="sm", elem_id="feedback-up")
                            down = gr.Button("Not helpful", size="sm", elem_id="feedback-down")
                        feedback_status = gr.Markdown(elem_id="feedback-status")
        with gr.Tab("Library"):
            corpus = gr.HTML(render_corpus(advisor), elem_id="library")

        inputs = [question, chatbot, doc_filter, case_filter, answers]
        outputs = [chatbot, evidence, searched, answers, question]
        send.click(respond, inputs, outputs, api_name="ask")
        question.submit(respond, inputs, outputs, api_name=False)
        clear.click(new_conversation, None, [chatbot, evidence, searched, answers, question, feedback_status],
                    api_name="new_conversation")
        rated = [feedback_status, comment]
        up.click(on_latest("up"), [comment, answers], rated, api_name="feedback_up")
        down.click(on_latest("down"), [comment, answers], rated, api_name="feedback_down")
        chatbot.like(on_like, [comment, answers], rated, api_name=False)
        chatbot.clear(new_conversation, None, [chatbot, evidence, searched, answers, question, feedback_status],
                      api_name=False)
        demo.load(refresh, None, [doc_filter, case_filter, corpus, build_status], api_name=False)
        build_timer.tick(poll_build, None, [doc_filter, case_filter, corpus, build_status, build_timer],
                         api_name=False, show_progress="hidden")
    return demo


def serve(demo, settings: Settings, *, port: int | None = None, block: bool = True):
    """Queue and serve a built app on loopback (or settings.ui_host) with our theme."""
    import gradio as gr

    demo.queue(default_concurrency_limit=settings.ui_concurrency, max_size=64)
    theme = gr.themes.Soft(
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )
    demo.launch(
        server_name=settings.ui_host,
        server_port=port or settings.ui_port,
        share=False,
        auth=parse_auth(settings.ui_auth),
        theme=theme,
        css=CSS,
        ssr_mode=False,
        footer_links=["api", "settings"],
        prevent_thread_lock=True,
        quiet=True,  # gradio's banner suggests share=True, which this app never uses
        inbrowser=False,
    )
    if block:
        log.info("Spread Advisor is open at %s (Ctrl+C to stop)", demo.local_url)
        demo.block_thread()
    return demo


def launch(settings: Settings | None = None, *, block: bool = True):
    """Build everything from settings and serve the page on settings.ui_host:ui_port."""
    force_offline()
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from advisor.advisor import build_advisor

    settings = settings or Settings()
    parse_auth(settings.ui_auth)  # a malformed ADVISOR_UI_AUTH fails before anything loads
    advisor = build_advisor(settings)
    builder = IndexBuilder(advisor)
    builder.start()
    feedback = FeedbackStore(settings.database_url)
    demo = build_ui(advisor, settings, feedback, builder)
    if advisor.ready:
        advisor.embedder.encode(["warm up"])  # load the model before the first question
    return serve(demo, settings, block=block), advisor, builder
