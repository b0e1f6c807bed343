"""The Gradio app: the page's components wired to `PageHandlers`, login, and serving.

Gradio is imported inside `build_ui` and `serve`, after `force_offline()`, so nothing it loads
can reach a hub. This module has no `from __future__ import annotations`: the handlers' event
types (`gr.LikeData`, `gr.SelectData`) are real annotations, which is how Gradio knows to
pass them.
"""

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from advisor.advisor import Advisor
from advisor.cases import FIELD_LABELS
from advisor.config import Settings, force_offline
from advisor.errors import ConfigError
from advisor.feedback import FeedbackStore
from advisor.history import ConversationStore
from advisor.web.handlers import ANY, CASE_FILTERS, KEEP, LIKE_PICKERS, Explorer, PageHandlers
from advisor.web.index_builder import IndexBuilder
from advisor.web.login import ClientAddress, Login, LoginLimiter
from advisor.web.render import GUIDANCE_HINT, LIKE_HINT, render_evidence, render_message

log = logging.getLogger(__name__)

STYLE = (Path(__file__).parent / "static" / "page.css").read_text(encoding="utf-8")

EXAMPLES = [
    "How did other innovators persuade late adopters to take up their product?",
    "What role do clinical champions play in spreading an innovation?",
    "What evidence do NHS adopters want before taking up an innovation?",
    "What makes a good pilot of a technology-enabled service change?",
    "How did the DAFNE programme spread across the NHS?",
]
CASE_COLUMNS = ["Case study", "Report", "Innovation type", "Setting"]  # how each spread: on its card


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


def build_ui(
    advisor: Advisor,
    settings: Settings,
    feedback: FeedbackStore,
    builder: IndexBuilder | None = None,
    conversations: ConversationStore | None = None,
):
    """The Gradio Blocks app around one advisor and one feedback store; with a conversation
    store, every answer is saved per user (login) or per browser (cookie) and can be reopened,
    renamed, deleted, shared and downloaded."""
    force_offline()
    import gradio as gr

    from advisor.web.insights import add_insights_tab
    from advisor.web.share import owner_for

    page = PageHandlers(advisor, settings, feedback, builder, conversations)
    login_on = bool(settings.ui_auth)

    def owner(request: gr.Request | None):
        return owner_for(request, login_on) if request is not None else None

    def listed(listing) -> tuple:
        return (
            gr.update(choices=listing.choices, value=listing.value),
            gr.update(value=listing.links, visible=bool(listing.links)),
            listing.status,
        )

    def shown(values: Iterable[Any]) -> tuple:
        """A handler's outputs for Gradio: an output to leave as it is becomes gr.skip()."""
        return tuple(gr.skip() if v is KEEP else v for v in values)

    def respond(message, history, sources, cases, answers, request: gr.Request):
        for turn in page.ask(message, history, sources, cases, answers, owner(request)):
            yield shown(turn)

    def on_history(answers, request: gr.Request):
        return (*listed(page.listing(owner(request), answers)), "")  # a pending delete is asked again

    def on_open(conversation_id, request: gr.Request):
        if not conversation_id:
            return (gr.skip(),) * 6
        return shown(page.open_conversation(conversation_id, owner(request)))

    def on_load(request: gr.Request):
        who = owner(request)
        opened = page.latest_conversation(who)
        answers = opened.answers if opened.answers is not KEEP else {}
        return (*shown(opened), *listed(page.listing(who, answers)))

    def on_rename(title, answers, request: gr.Request):
        return listed(page.rename_conversation(title, answers, owner(request)))

    def on_delete(answers, confirming, request: gr.Request):
        cleared, listing, confirming = page.delete_conversation(answers, owner(request), confirming)
        return (*shown(cleared), *listed(listing), confirming)

    def on_latest(verdict: str):
        return lambda comment, answers: shown(page.rate_latest(verdict, comment, answers))

    def on_like(data: gr.LikeData, comment: str, answers: dict):
        return shown(page.rate(data, comment, answers))

    def on_row(data: gr.SelectData):
        row = data.row_value or []
        return row[0] if row else gr.skip()

    def explorer_updates(state: Explorer) -> tuple:
        """Updates that refill the case-study tabs (after the build, on page load)."""
        return (
            state.status,
            gr.update(choices=state.reports, value=ANY),
            *(gr.update(choices=state.tags[f], value=ANY) for f in CASE_FILTERS),
            state.rows,
            state.count,
            gr.update(choices=state.names, value=None),
            state.card,
            *(gr.update(choices=state.like[f], value=[]) for f in LIKE_PICKERS),
        )

    def guidance_updates() -> tuple:
        """Updates that refill the guidance tab's filters (its themes are drawn when it is opened)."""
        choices = page.guidance_choices()
        return (
            choices.status,
            gr.update(choices=choices.audiences, value=ANY),
            gr.update(choices=choices.stages, value=ANY),
        )

    def guidance(audience: str = "", stage: str = "", theme: str = "") -> list | dict:
        """The guidance map's themes as JSON for an audience, a stage and/or a theme ("" for any),
        as `advisor guidance --json` prints them; {"error": "..."} for an unknown value."""
        return page.guidance_json(audience, stage, theme)

    def refresh():
        docs, cases = page.filter_choices()
        return (
            gr.update(choices=docs),
            gr.update(choices=cases),
            page.library(),
            page.banner(),
            *explorer_updates(page.explorer()),
            *guidance_updates(),
        )

    def poll_build():
        if advisor.ready:  # built: fill the filters, the library, the case studies and the guidance, stop
            return (*refresh(), page.guidance(ANY, ANY), gr.Timer(active=False))
        return gr.skip(), gr.skip(), gr.skip(), page.banner(), *[gr.skip()] * (len(explored) + 1), gr.skip()

    with gr.Blocks(title="Spread Advisor", analytics_enabled=False, fill_height=True) as demo:
        answers = gr.State({})
        confirming = gr.State("")  # the conversation whose Delete awaits a second press
        gr.Markdown(
            "## Spread Advisor\nEvidence-based answers on scaling and spreading innovation in the NHS, "
            "quoted from five public reports. Every sentence cites the passage it comes from."
        )
        build_status = gr.Markdown(page.banner(), elem_id="build-status")
        build_timer = gr.Timer(2, active=not advisor.ready)
        with gr.Tab("Ask"), gr.Row(equal_height=False):
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
                with gr.Accordion(
                    "Your conversations: reopen, rename, delete, download",
                    open=False,
                    visible=conversations is not None,
                    elem_id="history",
                ):
                    saved = gr.Dropdown([], value=None, label="Saved conversations", elem_id="history-picker")
                    with gr.Row():
                        new_title = gr.Textbox(
                            placeholder="A new title for this conversation",
                            show_label=False,
                            scale=4,
                            elem_id="history-title",
                        )
                        rename = gr.Button("Rename", size="sm", scale=1, elem_id="history-rename")
                        remove = gr.Button(
                            "Delete", size="sm", variant="stop", scale=1, elem_id="history-delete"
                        )
                    links = gr.HTML("", visible=False, elem_id="history-links")
                    history_status = gr.Markdown(elem_id="history-status")
                with gr.Accordion("Filters: restrict to reports or case studies", open=False):
                    docs, cases = page.filter_choices()
                    doc_filter = gr.Dropdown(docs, multiselect=True, label="Reports", elem_id="doc-filter")
                    case_filter = gr.Dropdown(
                        cases, multiselect=True, label="Case studies", elem_id="case-filter"
                    )
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
            corpus = gr.HTML(page.library(), elem_id="library")
        shown_state = page.explorer()  # API clients see these choices; the page's are refreshed on load
        with gr.Tab("Case studies", elem_id="cases-tab"):
            cases_status = gr.Markdown(shown_state.status, elem_id="cases-status")
            with gr.Row(equal_height=False):
                with gr.Column(scale=5):
                    with gr.Group():
                        with gr.Row():
                            case_report = gr.Dropdown(
                                shown_state.reports,
                                value=ANY,
                                label="Report",
                                elem_id="cases-report",
                                scale=3,
                            )
                            case_type = gr.Dropdown(
                                shown_state.tags["innovation_type"],
                                value=ANY,
                                label="Innovation type",
                                elem_id="cases-type",
                                scale=2,
                            )
                        with gr.Row():
                            case_setting = gr.Dropdown(
                                shown_state.tags["setting"],
                                value=ANY,
                                label="Setting",
                                elem_id="cases-setting",
                            )
                            case_mechanism = gr.Dropdown(
                                shown_state.tags["mechanism"],
                                value=ANY,
                                label="Spread through",
                                elem_id="cases-mechanism",
                            )
                    case_count = gr.Markdown(shown_state.count, elem_id="cases-count")
                    case_table = gr.Dataframe(
                        shown_state.rows,
                        headers=CASE_COLUMNS,
                        interactive=False,
                        wrap=True,
                        max_height=640,
                        column_widths=["32%", "22%", "22%", "24%"],
                        elem_id="cases-table",
                    )
                with gr.Column(scale=4):
                    case_picker = gr.Dropdown(
                        shown_state.names, value=None, label="Open a case study", elem_id="case-picker"
                    )
                    case_card = gr.HTML(shown_state.card, elem_id="case-card")
        with gr.Tab("Cases like mine", elem_id="like-tab"):
            gr.Markdown(
                "Describe your innovation and where it is used, and/or pick tags: the case studies most like "
                "it are ranked, with why they match, how they spread, where their context differs and the "
                "quotes behind each point."
            )
            like_text = gr.Textbox(
                label="Your innovation and its setting",
                placeholder="e.g. a digital tool for GP practices, made by a small company",
                lines=2,
                elem_id="like-text",
            )
            with gr.Row():
                like_type, like_setting, like_org = (
                    gr.Dropdown(
                        shown_state.like[f],
                        value=[],
                        multiselect=True,
                        label=FIELD_LABELS[f].capitalize(),
                        elem_id=f"like-{key}",
                    )
                    for f, key in zip(LIKE_PICKERS, ("type", "setting", "org"))
                )
            like_find = gr.Button("Find similar cases", variant="primary", elem_id="like-find")
            like_results = gr.HTML(render_message(LIKE_HINT, kind="hint", panel=""), elem_id="like-results")
        guided = page.guidance_choices()
        with gr.Tab("Guidance", elem_id="guidance-tab") as guidance_tab:
            gr.Markdown(
                "What the reports advise, by theme: each theme's advice in a few sentences, who it is for "
                "and at what stage of spread, and its points, each quoted from a report with the case "
                "studies that show it. Choose who you are and your stage to see the points for you."
            )
            guidance_status = gr.Markdown(guided.status, elem_id="guidance-status")
            with gr.Row():
                guidance_audience = gr.Dropdown(
                    guided.audiences, value=ANY, label="For", elem_id="guidance-audience"
                )
                guidance_stage = gr.Dropdown(
                    guided.stages, value=ANY, label="Stage of spread", elem_id="guidance-stage"
                )
            guidance_themes = gr.HTML(
                render_message(GUIDANCE_HINT, kind="hint", panel=""), elem_id="guidance-themes"
            )
        add_insights_tab(feedback.engine, settings)  # the maintainers' figures, last

        inputs = [question, chatbot, doc_filter, case_filter, answers]
        outputs = [chatbot, evidence, searched, answers, question]
        listing = [saved, links, history_status]
        relisted = [*listing, confirming]
        send.click(respond, inputs, outputs, api_name="ask").then(
            on_history, [answers], relisted, api_name=False, show_progress="hidden"
        )
        question.submit(respond, inputs, outputs, api_name=False).then(
            on_history, [answers], relisted, api_name=False, show_progress="hidden"
        )
        cleared = [chatbot, evidence, searched, answers, question, feedback_status]
        clear.click(page.new_conversation, None, cleared, api_name="new_conversation").then(
            on_history, [answers], relisted, api_name=False, show_progress="hidden"
        )
        saved.input(on_open, [saved], cleared, api_name=False).then(
            on_history, [answers], relisted, api_name=False, show_progress="hidden"
        )
        rename.click(on_rename, [new_title, answers], listing, api_name=False)
        new_title.submit(on_rename, [new_title, answers], listing, api_name=False)
        remove.click(on_delete, [answers, confirming], [*cleared, *listing, confirming], api_name=False)
        demo.load(on_load, None, [*cleared, *listing], api_name=False)
        rated = [feedback_status, comment]
        up.click(on_latest("up"), [comment, answers], rated, api_name="feedback_up")
        down.click(on_latest("down"), [comment, answers], rated, api_name="feedback_down")
        chatbot.like(on_like, [comment, answers], rated, api_name=False)
        chatbot.clear(page.new_conversation, None, cleared, api_name=False)
        case_filters = [case_report, case_type, case_setting, case_mechanism]
        gr.on(
            [f.input for f in case_filters],
            page.filter_cases,
            case_filters,
            [case_table, case_count],
            api_name="filter_cases",
            show_progress="hidden",
        )
        case_picker.change(
            page.case_card, [case_picker], [case_card], api_name="case_card", show_progress="hidden"
        )
        case_table.select(on_row, None, [case_picker], api_name=False, show_progress="hidden")
        like_inputs = [like_text, like_type, like_setting, like_org]
        like_find.click(page.cases_like, like_inputs, [like_results], api_name="cases_like")
        like_text.submit(page.cases_like, like_inputs, [like_results], api_name=False)
        guidance_filters = [guidance_audience, guidance_stage]
        gr.on(
            [f.input for f in guidance_filters],
            page.guidance,
            guidance_filters,
            [guidance_themes],
            api_name="filter_guidance",
            show_progress="hidden",
        )
        # drawn when the tab is opened, not with every page load: all themes with their passages
        # are about 1.4 MB of HTML
        guidance_tab.select(
            page.guidance, guidance_filters, [guidance_themes], api_name=False, show_progress="hidden"
        )
        gr.api(guidance, api_name="guidance")
        explored = [
            cases_status, *case_filters, case_table, case_count, case_picker, case_card,
            like_type, like_setting, like_org, guidance_status, *guidance_filters,
        ]  # fmt: skip
        demo.load(refresh, None, [doc_filter, case_filter, corpus, build_status, *explored], api_name=False)
        polled = [doc_filter, case_filter, corpus, build_status, *explored, guidance_themes, build_timer]
        build_timer.tick(poll_build, None, polled, api_name=False, show_progress="hidden")
    return demo


def serve(
    demo,
    settings: Settings,
    *,
    port: int | None = None,
    block: bool = True,
    conversations: ConversationStore | None = None,
):
    """Queue and serve a built app on loopback (or settings.ui_host) with our theme and, when
    ADVISOR_UI_AUTH is set, a rate-limited login (`advisor.web.login`). Every browser gets its
    cookie (its saved conversations' key without a login); with a conversation store, the
    share pages and the briefs are served beside the page (`advisor.web.share`)."""
    import gradio as gr
    from starlette.middleware import Middleware

    from advisor.web.share import BrowserCookie, share_routes

    accounts = parse_auth(settings.ui_auth)
    auth = notice = None
    if accounts:
        attempts, window = settings.ui_login_attempts, settings.ui_login_window
        auth = Login(accounts, LoginLimiter(attempts, window))
        notice = (
            f"After {attempts} failed logins within {window:g} s for a user name, or from an address, "
            f"it is refused for up to {window:g} s."
        )
    routes = []
    if conversations is not None:
        routes = share_routes(lambda: conversations, login_on=bool(accounts), corpus_dir=settings.corpus_dir)
    demo.queue(default_concurrency_limit=settings.ui_concurrency, max_size=64)
    theme = gr.themes.Soft(
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )
    demo.launch(
        server_name=settings.ui_host,
        server_port=port or settings.ui_port,
        share=False,
        auth=auth,
        auth_message=notice,  # the page's refusal is always "Incorrect credentials"
        app_kwargs={
            "middleware": [
                Middleware(ClientAddress),
                Middleware(BrowserCookie),
            ],  # ClientAddress: `Login`'s limit
            "routes": routes,
        },
        theme=theme,
        css=STYLE,
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
    feedback = FeedbackStore.from_settings(settings)
    conversations = ConversationStore.from_settings(settings)
    demo = build_ui(advisor, settings, feedback, builder, conversations)
    if advisor.ready:
        log.info("warmed up in %.1f s", advisor.warm_up())  # before the first question, not during it
    return serve(demo, settings, block=block, conversations=conversations), advisor, builder
