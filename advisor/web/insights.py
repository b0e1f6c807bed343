"""The Insights tab: what people asked and how the answers fared, for the advisor's maintainers.

`insights_view` decides who may see them and turns `advisor.insights.compute_insights` into
markdown and pandas DataFrames; `add_insights_tab` only lays out Gradio's own components (a line
plot of questions per day, bar plots of the most-cited reports and case studies, tables of the
thumbs-down and the refused questions) and fills them when the tab is opened or refreshed.

Who sees the figures: with a login (`ADVISOR_UI_AUTH`) and `ADVISOR_MAINTAINERS`, the users it
names; with a login and no maintainers list, every signed-in user; with no login, everyone when
the page is served on loopback only, and nobody when it is served to the network.

Gradio is imported inside `add_insights_tab`, after `force_offline()`. This module has no
`from __future__ import annotations`: the handler's `gr.Request` annotation must be a real
class for Gradio to pass the request.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from advisor.config import Settings, force_offline
from advisor.errors import AdvisorError
from advisor.insights import Cited, Insights, compute_insights

log = logging.getLogger(__name__)

DAYS = (7, 30, 90)  # the windows offered; the second is shown first
TOP = 10
FOR_MAINTAINERS = (
    "The insights are for the advisor's maintainers. Ask one to add your user name to "
    "ADVISOR_MAINTAINERS if you need them."
)
DOWN_COLUMNS = ["Date (UTC)", "Channel", "Question", "Comment"]
GAP_COLUMNS = ["Question", "Times asked", "Last asked (UTC)"]


def maintainers(settings: Settings) -> frozenset[str]:
    """The user names of `ADVISOR_MAINTAINERS` (comma-separated); empty when unset."""
    return frozenset(name.strip() for name in (settings.maintainers or "").split(",") if name.strip())


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
NEEDS_LOGIN = (
    "The insights show every user's questions and comments, so they are shown without a login "
    "only on this machine (ADVISOR_UI_HOST 127.0.0.1). Turn on the login (ADVISOR_UI_AUTH) to "
    "see them here."
)


def may_see_insights(settings: Settings, username: str | None) -> bool:
    """Without a login, everyone on a page served on loopback only (nobody when it is served to
    the network: the figures hold every user's questions); with one, the maintainers, or every
    signed-in user when none are named."""
    if not settings.ui_auth:
        return settings.ui_host in LOOPBACK
    if not username:
        return False
    named = maintainers(settings)
    return not named or username in named


@dataclass(frozen=True, eq=False)
class InsightsView:
    """What the tab shows one user: a summary, and the figures' data (empty when not theirs)."""

    allowed: bool
    summary: str  # markdown: the headline figures, or why there are none
    per_day: pd.DataFrame  # day, series ("asked" or "refused"), questions
    reports: pd.DataFrame  # report, citations, answers
    cases: pd.DataFrame  # case (the case study), citations, answers
    thumbs_down: pd.DataFrame  # DOWN_COLUMNS, the latest first
    gaps: pd.DataFrame  # GAP_COLUMNS, the most asked first
    insights: Insights | None = None

    @property
    def figures(self) -> bool:
        """Whether there are figures to show (allowed, and the database could be read)."""
        return self.insights is not None


def insights_view(
    engine: Engine, settings: Settings, username: str | None, *, days: int = 30, now: datetime | None = None
) -> InsightsView:
    """The Insights tab for one user (`gr.Request.username`, None without a login)."""
    if not may_see_insights(settings, username):
        return _empty(False, FOR_MAINTAINERS if settings.ui_auth else NEEDS_LOGIN)
    try:
        insights = compute_insights(engine, days=days, now=now, top=TOP)
    except AdvisorError as exc:  # the edge: the tab says so, the page keeps working
        log.error("the insights could not be computed: %s", exc)
        return _empty(True, f"The insights could not be read: {exc}")
    return InsightsView(
        allowed=True,
        summary=summary_markdown(insights),
        per_day=pd.DataFrame(
            [
                {"day": pd.Timestamp(d.day), "series": series, "questions": n}
                for d in insights.per_day
                for series, n in (("asked", d.questions), ("refused", d.refused))
            ],
            columns=["day", "series", "questions"],
        ),
        reports=_cited(insights.reports, "report"),
        cases=_cited(insights.cases, "case"),
        thumbs_down=pd.DataFrame(
            [[_when(t.created_at), t.channel, t.question, t.comment] for t in insights.thumbs_down],
            columns=DOWN_COLUMNS,
        ),
        gaps=pd.DataFrame(
            [[g.question, g.times, _when(g.last_asked)] for g in insights.gaps], columns=GAP_COLUMNS
        ),
        insights=insights,
    )


def summary_markdown(insights: Insights) -> str:
    """The headline figures in a few sentences, saying what each share is of."""
    n, downs, days = insights.questions, insights.answers_with_thumbs_down, len(insights.per_day)
    asked = (
        f"**{n}** {_plural(n, 'question')} asked in the last {days} {_plural(days, 'day')} "
        f"({insights.start:%d %b %Y} to {insights.end:%d %b %Y}, UTC, every channel): "
        f"**{insights.answered}** answered, **{insights.refused}** refused "
        f"({insights.refused_share:.0%} of the questions)."
    )
    rated = (
        f"**{downs}** {_plural(downs, 'answer')} got a thumbs-down: "
        f"{insights.thumbs_down_share:.0%} of the {n} answers given, refusals included."
    )
    lines = [asked, rated]
    if insights.unmatched_thumbs_down:
        lines.append(
            f"{insights.unmatched_thumbs_down} more thumbs-down matched no saved answer of these days "
            "(they are listed below, not counted in the share)."
        )
    if not n and not insights.thumbs_down:
        lines.append("Nothing has been asked in these days yet.")
    return "\n\n".join(lines)


def _plural(n: int, noun: str) -> str:
    """The noun, in the plural unless there is one."""
    return noun if n == 1 else f"{noun}s"


def _cited(items: tuple[Cited, ...], label: str) -> pd.DataFrame:
    names = [c.name for c in items]
    rows = [  # two reports with one title stay two bars
        [f"{c.name} ({c.source})" if names.count(c.name) > 1 else c.name, c.citations, c.answers]
        for c in items
    ]
    return pd.DataFrame(rows, columns=[label, "citations", "answers"])


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"


def _empty(allowed: bool, summary: str) -> InsightsView:
    return InsightsView(
        allowed=allowed,
        summary=summary,
        per_day=pd.DataFrame(columns=["day", "series", "questions"]),
        reports=pd.DataFrame(columns=["report", "citations", "answers"]),
        cases=pd.DataFrame(columns=["case", "citations", "answers"]),
        thumbs_down=pd.DataFrame(columns=DOWN_COLUMNS),
        gaps=pd.DataFrame(columns=GAP_COLUMNS),
    )


def add_insights_tab(engine: Engine, settings: Settings):
    """The Insights tab, inside an open `gr.Blocks()`: filled when opened and on Refresh. Returns the tab."""
    force_offline()
    import gradio as gr

    def show(days: int, request: gr.Request):
        view = insights_view(engine, settings, request.username if request else None, days=int(days))
        return (
            view.summary,
            gr.Column(visible=view.figures),
            view.per_day,
            view.reports,
            view.cases,
            view.thumbs_down,
            view.gaps,
        )

    with gr.Tab("Insights", elem_id="insights-tab") as tab:
        with gr.Row(equal_height=True):
            window = gr.Radio(list(DAYS), value=DAYS[1], label="Days", scale=3, elem_id="insights-days")
            refresh = gr.Button("Refresh", size="sm", scale=1, elem_id="insights-refresh")
        summary = gr.Markdown(elem_id="insights-summary")
        with gr.Column(visible=False, elem_id="insights-figures") as figures:
            per_day = gr.LinePlot(
                x="day",
                y="questions",
                color="series",
                title="Questions per day (UTC)",
                x_title="day",
                y_title="questions",
                elem_id="insights-per-day",
            )
            with gr.Row():
                reports = gr.BarPlot(
                    x="report",
                    y="citations",
                    title="Most-cited reports",
                    sort="-y",
                    x_label_angle=-20,
                    elem_id="insights-reports",
                )
                cases = gr.BarPlot(
                    x="case",
                    y="citations",
                    title="Most-cited case studies",
                    x_title="case study",
                    sort="-y",
                    x_label_angle=-30,
                    elem_id="insights-cases",
                )
            gr.Markdown("### Thumbs down, the latest first")
            thumbs_down = gr.Dataframe(
                headers=DOWN_COLUMNS,
                interactive=False,
                wrap=True,
                max_height=420,
                column_widths=["14%", "8%", "40%", "38%"],
                elem_id="insights-thumbs-down",
            )
            gr.Markdown("### Refused questions (the content gap), the most asked first")
            gaps = gr.Dataframe(
                headers=GAP_COLUMNS,
                interactive=False,
                wrap=True,
                max_height=420,
                column_widths=["70%", "12%", "18%"],
                elem_id="insights-gaps",
            )
    outputs = [summary, figures, per_day, reports, cases, thumbs_down, gaps]
    tab.select(show, [window], outputs, api_name=False, show_progress="hidden")
    refresh.click(show, [window], outputs, api_name="insights", show_progress="minimal")
    window.input(show, [window], outputs, api_name=False, show_progress="minimal")
    return tab
