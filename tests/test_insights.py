"""Insights for maintainers: every figure against turns and feedback put in a real SQLite by hand,
who may see them, an empty database and one without the tables, and the tab served for real."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text, update

from advisor.config import Settings
from advisor.db import feedback as feedback_table
from advisor.db import make_engine, open_database
from advisor.feedback import FeedbackStore
from advisor.history import ConversationStore, Owner
from advisor.insights import compute_insights
from advisor.web.insights import (
    DOWN_COLUMNS,
    FOR_MAINTAINERS,
    GAP_COLUMNS,
    NEEDS_LOGIN,
    insights_view,
    may_see_insights,
)
from tests.conftest import free_port

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
NUFFIELD = "nuffield-2020-achieving-scale-and-spread.txt"
ODDS = "health-foundation-2018-against-the-odds.txt"
TITLES = {NUFFIELD: "Achieving scale and spread", ODDS: "Against the Odds"}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def cite(source: str, case: str | None, marker: int = 1) -> dict:
    return {
        "marker": marker,
        "source": source,
        "title": TITLES[source],
        "publisher": "",
        "year": 2020,
        "section": "",
        "case_study": case,
        "page": None,
        "chunk_id": f"{source}-{marker}",
        "quote": "a quote",
    }


def record(question: str, *citations: dict, refused: bool = False) -> dict:
    answer = "The reports do not answer this." if refused else "An answer [1]."
    return {
        "question": question,
        "query": question,
        "answer": answer,
        "refused": refused,
        "citations": list(citations),
    }


@pytest.fixture
def db(tmp_path):
    """A database holding known turns and feedback; (url, engine, {name: turn id or feedback id})."""
    url = f"sqlite:///{tmp_path / 'advisor.sqlite3'}"
    engine = open_database(url)
    store = ConversationStore(engine)
    feedback = FeedbackStore(url)
    web, slack = Owner.user("ann"), Owner.slack("T1", "U1")
    ids: dict[str, object] = {}

    def turn(name, owner, when, rec, channel="web"):
        ids[name] = store.add_turn(owner, rec, channel=channel, now=when).id

    turn("old", web, at(1, 9), record("An old question?", cite(NUFFIELD, "DAFNE"), refused=True))
    turn(
        "t1",
        web,
        at(9, 9),
        record(
            "How did DAFNE spread?",
            cite(NUFFIELD, "DAFNE", 1),
            cite(NUFFIELD, "DAFNE", 2),
            cite(ODDS, None, 3),
        ),
    )
    turn("t2", web, at(9, 10), record("What is the price of KardiaMobile?", refused=True))
    turn("t1b", web, at(10, 12), record("How did DAFNE spread?", cite(NUFFIELD, "DAFNE")))
    turn(
        "t3", slack, at(12, 8), record("what is the  price of kardiamobile? ", refused=True), channel="slack"
    )
    turn(
        "t4",
        slack,
        at(14, 15),
        record("Who funds Schwartz Rounds?", cite(NUFFIELD, "Schwartz Rounds")),
        channel="slack",
    )
    turn("t5", web, at(15, 11), record("How do I write a business case?", refused=True))
    turn("later", web, at(15, 13), record("Asked after now?", refused=True))

    def rate(name, when, channel, question, verdict, comment="", meta=None):
        rec = record(question)
        ids[name] = feedback.record(channel, question, rec, verdict, comment, meta)
        with engine.begin() as conn:  # FeedbackStore stamps the present: moved to a known time
            conn.execute(
                update(feedback_table).where(feedback_table.c.id == ids[name]).values(created_at=when)
            )

    rate("f_old", at(2, 10), "web", "An old question?", "down", "Old comment")
    rate("f1", at(9, 9, 5), "web", "How did DAFNE spread?", "down", "Too vague", {"answer_id": ids["t1"]})
    rate("f2", at(10, 10), "web", "How did DAFNE spread?", "down")  # by text: t1, not t1b asked after it
    rate("f5", at(13, 9), "web", "A question never saved", "down", "No answer kept")
    rate("f3", at(14, 16), "slack", "who funds  Schwartz Rounds?", "down", "Wrong funder")
    rate("f4", at(14, 17), "web", "Who funds Schwartz Rounds?", "up", "Fine")
    return url, engine, ids


def test_every_figure_is_what_was_stored(db):
    _, engine, ids = db
    found = compute_insights(engine, days=7, now=NOW)

    assert found.start == datetime(2026, 3, 9, tzinfo=UTC) and found.end == NOW
    assert [(d.day, d.questions, d.refused) for d in found.per_day] == [
        (date(2026, 3, 9), 2, 1),
        (date(2026, 3, 10), 1, 0),
        (date(2026, 3, 11), 0, 0),
        (date(2026, 3, 12), 1, 1),
        (date(2026, 3, 13), 0, 0),
        (date(2026, 3, 14), 1, 0),
        (date(2026, 3, 15), 1, 1),
    ]
    assert (found.questions, found.answered, found.refused) == (6, 3, 3)
    assert found.refused_share == pytest.approx(3 / 6)
    # t1 (by its id, and again by text) and t4 (by text, case and spaces folded): two answers of six
    assert found.answers_with_thumbs_down == 2
    assert found.thumbs_down_share == pytest.approx(2 / 6)
    assert [(t.feedback_id, t.turn_id) for t in found.thumbs_down] == [
        (ids["f3"], ids["t4"]),
        (ids["f5"], None),
        (ids["f2"], ids["t1"]),
        (ids["f1"], ids["t1"]),
    ]
    assert found.unmatched_thumbs_down == 1
    latest = found.thumbs_down[0]
    assert (latest.question, latest.comment, latest.channel, latest.created_at) == (
        "who funds  Schwartz Rounds?",
        "Wrong funder",
        "slack",
        at(14, 16),
    )
    assert [(g.question, g.times, g.last_asked, g.turn_id) for g in found.gaps] == [
        ("what is the price of kardiamobile?", 2, at(12, 8), ids["t3"]),
        ("How do I write a business case?", 1, at(15, 11), ids["t5"]),
    ]
    assert [(c.name, c.source, c.citations, c.answers) for c in found.reports] == [
        ("Achieving scale and spread", NUFFIELD, 4, 3),
        ("Against the Odds", ODDS, 1, 1),
    ]
    assert [(c.name, c.citations, c.answers) for c in found.cases] == [
        ("DAFNE", 3, 2),
        ("Schwartz Rounds", 1, 1),
    ]

    first = compute_insights(engine, days=7, now=NOW, top=1)
    assert [c.name for c in first.reports] == ["Achieving scale and spread"]
    assert [c.name for c in first.cases] == ["DAFNE"]

    wide = compute_insights(engine, days=15, now=NOW)  # from 1 March: the old turn and its thumbs-down
    assert (wide.questions, wide.refused, len(wide.per_day)) == (7, 4, 15)
    assert wide.answers_with_thumbs_down == 3
    assert wide.gaps[-1].question == "An old question?"


def test_the_view_turns_the_figures_into_tables_and_plots(db, tmp_path):
    _, engine, _ = db
    view = insights_view(engine, Settings(data_dir=tmp_path, _env_file=None), None, days=7, now=NOW)
    assert view.allowed and view.figures
    assert "**6** questions asked in the last 7 days" in view.summary
    assert "**3** refused (50% of the questions)" in view.summary
    assert "**2** answers got a thumbs-down: 33% of the 6 answers given" in view.summary
    assert "1 more thumbs-down matched no saved answer" in view.summary
    asked = view.per_day[view.per_day.series == "asked"]
    assert asked.questions.tolist() == [2, 1, 0, 1, 0, 1, 1]
    assert view.per_day[view.per_day.series == "refused"].questions.tolist() == [1, 0, 0, 1, 0, 0, 1]
    assert view.reports.values.tolist() == [["Achieving scale and spread", 4, 3], ["Against the Odds", 1, 1]]
    assert view.cases["case"].tolist() == ["DAFNE", "Schwartz Rounds"]
    assert list(view.thumbs_down.columns) == DOWN_COLUMNS
    assert view.thumbs_down.values.tolist()[0] == [
        "2026-03-14 16:00",
        "slack",
        "who funds  Schwartz Rounds?",
        "Wrong funder",
    ]
    assert view.thumbs_down["Comment"].tolist() == ["Wrong funder", "No answer kept", "", "Too vague"]
    assert list(view.gaps.columns) == GAP_COLUMNS
    assert view.gaps.values.tolist() == [
        ["what is the price of kardiamobile?", 2, "2026-03-12 08:00"],
        ["How do I write a business case?", 1, "2026-03-15 11:00"],
    ]


def test_who_sees_the_insights(db, tmp_path):
    _, engine, _ = db

    def settings(**values) -> Settings:
        return Settings(data_dir=tmp_path, _env_file=None, **values)

    named = settings(ui_auth="ann:pw1,bob:pw2,cy:pw3", maintainers="ann, cy")
    assert may_see_insights(named, "ann") and may_see_insights(named, "cy")
    assert not may_see_insights(named, "bob") and not may_see_insights(named, None)
    everyone_signed_in = settings(ui_auth="ann:pw1,bob:pw2")
    assert may_see_insights(everyone_signed_in, "bob") and not may_see_insights(everyone_signed_in, None)
    no_login = settings(maintainers="ann")
    assert may_see_insights(no_login, None) and may_see_insights(no_login, "bob")
    open_to_the_network = settings(ui_host="0.0.0.0")
    assert not may_see_insights(open_to_the_network, None)
    hidden = insights_view(engine, open_to_the_network, None, now=NOW)
    assert not hidden.allowed and hidden.summary == NEEDS_LOGIN and hidden.thumbs_down.empty

    refused = insights_view(engine, named, "bob", now=NOW)
    assert not refused.allowed and not refused.figures and refused.insights is None
    assert refused.summary == FOR_MAINTAINERS
    assert all(frame.empty for frame in (refused.per_day, refused.reports, refused.thumbs_down, refused.gaps))
    shown = insights_view(engine, named, "ann", days=7, now=NOW)
    assert shown.allowed and shown.figures and shown.insights.questions == 6


def test_an_empty_database_and_one_without_the_tables_read_as_zeros(tmp_path):
    empty = open_database(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    bare_path = tmp_path / "bare.sqlite3"
    with create_engine(f"sqlite:///{bare_path}").begin() as conn:  # a database, but none of our tables
        conn.execute(text("CREATE TABLE other (x INTEGER)"))
    bare = make_engine(f"sqlite:///{bare_path}", read_only=True)
    for engine in (empty, bare):
        found = compute_insights(engine, now=NOW)
        assert len(found.per_day) == 30 and found.per_day[-1].day == NOW.date()
        assert all(d.questions == d.refused == 0 for d in found.per_day)
        assert (found.questions, found.refused, found.answers_with_thumbs_down) == (0, 0, 0)
        assert found.refused_share == 0.0 and found.thumbs_down_share == 0.0
        assert found.thumbs_down == found.gaps == found.reports == found.cases == ()
        view = insights_view(engine, Settings(data_dir=tmp_path, _env_file=None), None, now=NOW)
        assert view.figures and "Nothing has been asked" in view.summary
        assert view.per_day.questions.sum() == 0 and view.reports.empty and view.gaps.empty


def test_days_must_be_positive(tmp_path):
    from advisor.errors import AdvisorError

    engine = open_database(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    with pytest.raises(AdvisorError, match="days=0"):
        compute_insights(engine, days=0)


@pytest.mark.slow
def test_the_tab_served_with_a_login_shows_figures_to_maintainers_only(tmp_path):
    """The real Gradio wiring: the signed-in user's name reaches the access rule."""
    import gradio as gr
    from gradio_client import Client

    from advisor.web.insights import add_insights_tab

    engine = open_database(f"sqlite:///{tmp_path / 'served.sqlite3'}")
    asked = datetime.now(UTC) - timedelta(hours=1)  # the tab reads the days up to the present
    ConversationStore(engine).add_turn(
        Owner.user("bob"),
        record(
            "How did DAFNE spread?", cite(NUFFIELD, None, 1), cite(ODDS, "DAFNE", 2), cite(ODDS, "DAFNE", 3)
        ),
        now=asked,
    )
    settings = Settings(data_dir=tmp_path, _env_file=None, ui_auth="ann:pw1,bob:pw2", maintainers="ann")
    with gr.Blocks(analytics_enabled=False) as demo:
        tab = add_insights_tab(engine, settings)
    assert tab.elem_id == "insights-tab"
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        auth=[("ann", "pw1"), ("bob", "pw2")],
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
    )
    try:  # the client gets the components' values (the figures column's visibility is not one)
        url = f"http://127.0.0.1:{port}/"
        summary, per_day, reports, cases, thumbs_down, gaps = Client(
            url, auth=("ann", "pw1"), verbose=False
        ).predict(90, api_name="/insights")
        assert "**1** question asked in the last 90 days" in summary
        assert len(per_day["data"]) == 2 * 90 and sum(row[2] for row in per_day["data"]) == 1
        assert [row[0] for row in reports["data"]] == ["Against the Odds", "Achieving scale and spread"]
        assert cases["data"] == [["DAFNE", 2, 1]]
        assert thumbs_down["headers"] == DOWN_COLUMNS and gaps["headers"] == GAP_COLUMNS
        summary, per_day, reports, *_ = Client(url, auth=("bob", "pw2"), verbose=False).predict(
            30, api_name="/insights"
        )
        assert summary == FOR_MAINTAINERS
        assert per_day["data"] == [] and reports["data"] == []
    finally:
        demo.close()
