"""Shared answers and downloads (`advisor.web.share`): the read-only page of one answer, its
brief, a conversation's brief for its owner only, the browser cookie, the login, and the pages
that say why something cannot be shown. A small Starlette app of the real routes and middleware
over a real SQLite conversation store, driven by starlette's TestClient."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin

import pytest
from bs4 import BeautifulSoup
from docx import Document
from sqlalchemy import insert, text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from advisor.brief import NO_ANSWERS
from advisor.db import DatabaseError, conversations
from advisor.history import NO_ANSWER, NO_CONVERSATION, ConversationStore, Owner
from advisor.text import normalise_space
from advisor.web.share import (
    BROWSER_COOKIE,
    DATABASE_DOWN,
    SIGN_IN,
    BrowserCookie,
    browser_token,
    owner_for,
    share_routes,
)

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
NUFFIELD = "nuffield-2020-achieving-scale-and-spread.txt"
NUFFIELD_URL = "http://www.nuffieldtrust.org.uk/research/achieving-scale-and-spread"
ANSWERED = datetime(2025, 3, 5, 14, 7, tzinfo=UTC)
COOKIE_ID = "test-cookie-id"

# two passages of the Nuffield Trust report as the index keeps them (its line breaks included)
KARDIA = (
    "Initial implementations in secondary care were driven by individual \n\n"
    "clinical champions who were particularly enthusiastic about the product. \n\n"
    "However, the innovator did not view this as a way to achieve widespread, \n\n"
    "sustainable spread."
)
KARDIA_QUOTE = "clinical champions who were particularly enthusiastic about the product."
ADVOCATES = (
    "On reflection, reaching early adopters in primary and secondary care \n\n"
    "was seen as quite straightforward because they were already enthusiastic \n\n"
    "individuals who were “willing to have a go.” Alivecor felt that a key enabler for \n\n"
    "moving to the “mainstream”, was to find advocates from the early adopters \n\n"
    "to act as champions. This proved very effective."
)
# the quote as the answer gives it, on one line: the page finds it across the passage's breaks
ADVOCATES_QUOTE = (
    "Alivecor felt that a key enabler for moving to the “mainstream”, was to find advocates "
    "from the early adopters to act as champions."
)


def _cited(marker: int, chunk_id: str, quote: str, section: str, page: int) -> dict:
    return {
        "marker": marker,
        "source": NUFFIELD,
        "title": "Achieving scale and spread: learning for innovators and policy-makers",
        "publisher": "Nuffield Trust",
        "year": 2020,
        "section": section,
        "case_study": "KardiaMobile",
        "page": page,
        "chunk_id": chunk_id,
        "quote": quote,
    }


def _passage(rank: int, chunk_id: str, passage: str, section: str, page: int) -> dict:
    return {
        "rank": rank,
        "chunk_id": chunk_id,
        "source": NUFFIELD,
        "title": "Achieving scale and spread: learning for innovators and policy-makers",
        "section": section,
        "case_study": "KardiaMobile",
        "page": page,
        "score": 0.71,
        "text": passage,
    }


def champions_record(
    question: str = "What role do clinical champions play in spreading an innovation?",
) -> dict:
    """An answer of two labelled sentences, each citing a passage that holds its quote."""
    return {
        "question": question,
        "query": question,
        "answer": "Clinical champions drove the first implementations. Advocates among early adopters "
        "were found to act as champions.",
        "refused": False,
        "route": "passages",
        "backend": "extractive",
        "fallback": None,
        "notes": ["The answer quotes the reports; no language model was used."],
        "sentences": [
            {
                "text": "Initial implementations were driven by clinical champions who were enthusiastic "
                "about the product.",
                "markers": [1],
                "verdict": "supported",
                "label": "KardiaMobile",
            },
            {
                "text": "Finding advocates among early adopters to act as champions proved very effective.",
                "markers": [2],
                "verdict": "supported",
                "label": "KardiaMobile",
            },
        ],
        "citations": [
            _cited(1, "c-kardia", KARDIA_QUOTE, "Challenges", 61),
            _cited(2, "c-advocates", ADVOCATES_QUOTE, "Using champions, events and direct marketing", 63),
        ],
        "passages": [
            _passage(1, "c-kardia", KARDIA, "Challenges", 61),
            _passage(2, "c-advocates", ADVOCATES, "Using champions, events and direct marketing", 63),
        ],
        "timings_ms": {"total": 41.0},
    }


def catalogue_record() -> dict:
    question = "Which case studies used clinical champions?"
    return {
        "question": question,
        "query": question,
        "answer": "Case studies that mention champions:\n- KardiaMobile [1]",
        "refused": False,
        "route": "catalogue",
        "backend": "extractive",
        "fallback": None,
        "notes": [],
        "sentences": [
            {"text": "Case studies that mention champions:", "markers": [], "verdict": "supported"}
        ],
        "citations": [_cited(1, "c-kardia", KARDIA_QUOTE, "Challenges", 61)],
        "passages": [_passage(1, "c-kardia", KARDIA, "Challenges", 61)],
        "heading": "Case studies that mention champions:",
        "rows": [
            {
                "case": "KardiaMobile",
                "text": "Driven at first by individual clinical champions.",
                "markers": [1],
            }
        ],
    }


def refusal_record() -> dict:
    question = "What is the best recipe for lasagne?"
    return {
        "question": question,
        "query": question,
        "answer": "The reports do not cover this: they are about spreading innovation in the NHS.",
        "refused": True,
        "route": "passages",
        "backend": "extractive",
        "fallback": None,
        "notes": [],
        "sentences": [],
        "citations": [],
        "passages": [],
    }


def whoami(request: Request) -> PlainTextResponse:
    """What a handler on the same app sees: the owner of the request (login off)."""
    owner = owner_for(request, False)
    return PlainTextResponse(owner.key if owner else "nobody")


def make_app(store_factory, *, login_on: bool = False, tokens: dict[str, str] | None = None) -> Starlette:
    """The share routes and the browser cookie, with Gradio's login state on the app."""
    routes = [*share_routes(store_factory, login_on=login_on, corpus_dir=CORPUS), Route("/whoami", whoami)]
    app = Starlette(routes=routes, middleware=[Middleware(BrowserCookie)])
    app.tokens = dict(tokens or {})  # as gradio's App keeps them: {cookie token: user name}
    app.cookie_id = COOKIE_ID
    return app


@pytest.fixture
def store(tmp_path) -> ConversationStore:
    return ConversationStore.open(f"sqlite:///{tmp_path / 'conversations.sqlite3'}")


@pytest.fixture
def client(store):
    with TestClient(make_app(lambda: store)) as http:
        yield http


def browser_of(http: TestClient) -> Owner:
    """The owner a test client's browser is: it gets its cookie on its first request."""
    if BROWSER_COOKIE not in http.cookies:
        http.get("/whoami")
    return Owner.browser(http.cookies[BROWSER_COOKIE])


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def text_of(element) -> str:
    return normalise_space(element.get_text(" "))


def assert_private(response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert "noindex" in response.headers["x-robots-tag"]
    assert response.headers["referrer-policy"] == "no-referrer"


# ---- the shared page ------------------------------------------------------------------
def test_a_shared_answer_shows_the_question_answer_and_every_passage(client, store):
    record = champions_record()
    turn = store.add_turn(Owner.browser("x" * 32), record, generation="20250301T101500-3f2a9c", now=ANSWERED)

    response = client.get(f"/shared/{turn.id}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_private(response)
    page = soup(response)
    assert text_of(page.h1) == record["question"]
    answer = page.find(class_="answer")
    for sentence in record["sentences"]:
        assert sentence["text"] in text_of(answer)
    assert [a["href"] for a in answer.select("sup.marker a")] == ["#cite-1", "#cite-2"]
    assert "The answer quotes the reports" in text_of(answer)  # its note

    for cited, passage in zip(record["citations"], record["passages"], strict=True):
        card = page.find(id=f"cite-{cited['marker']}")
        assert card is not None and card.name == "article"
        assert text_of(card.h3).endswith(cited["title"])
        assert card.h3.a["href"] == NUFFIELD_URL  # the report's address from the manifest
        where = text_of(card.find(class_="where"))
        for part in ("Nuffield Trust", "2020", cited["section"], "KardiaMobile", f"p. {cited['page']}"):
            assert part in where
        marks = card.find_all("mark")
        assert len(marks) == 1
        assert normalise_space(marks[0].get_text()) == normalise_space(cited["quote"])
        assert normalise_space(card.find(class_="passage").get_text()) == normalise_space(passage["text"])

    meta = text_of(page.find(class_="meta"))
    assert "5 March 2025 at 14:07 UTC" in meta and "20250301T101500-3f2a9c" in meta
    assert "read-only" in text_of(page.find(class_="notice"))
    links = {
        a.get_text(): urljoin(str(response.url), a["href"])
        for a in page.find(class_="downloads").find_all("a")
    }
    assert links == {
        "Markdown": f"http://testserver/shared/{turn.id}/brief.md",
        "Word": f"http://testserver/shared/{turn.id}/brief.docx",
    }
    assert not page.find_all(["form", "input", "textarea", "button", "script"])


def test_a_catalogue_answer_shows_its_heading_and_rows(client, store):
    record = catalogue_record()
    turn = store.add_turn(Owner.browser("x" * 32), record, generation="g1", now=ANSWERED)

    page = soup(client.get(f"/shared/{turn.id}"))

    answer = page.find(class_="answer")
    assert text_of(answer.p) == record["heading"]
    rows = answer.find_all("li")
    assert [text_of(li) for li in rows] == ["Driven at first by individual clinical champions. [1]"]
    assert rows[0].a["href"] == "#cite-1"
    assert page.find(id="cite-1").mark.get_text() == KARDIA_QUOTE


def test_a_refusal_shows_what_it_said_and_no_sources(client, store):
    record = refusal_record()
    turn = store.add_turn(Owner.browser("x" * 32), record, generation="g1", now=ANSWERED)

    page = soup(client.get(f"/shared/{turn.id}"))

    assert text_of(page.find(class_="refusal")) == record["answer"]
    assert not page.find_all("article") and not page.find_all("mark")
    assert "refusal" in text_of(page.find(class_="hint"))


def test_markup_in_a_saved_answer_is_shown_as_text(client, store):
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    record = champions_record(question=f"Champions? {payload}")
    record["sentences"][0]["text"] += payload
    record["citations"][0]["title"] = payload
    record["notes"] = [payload]
    turn = store.add_turn(Owner.browser("x" * 32), record, generation=payload, now=ANSWERED)

    response = client.get(f"/shared/{turn.id}")

    assert "<script" not in response.text and "<img" not in response.text
    page = soup(response)
    assert payload in text_of(page.h1)
    assert text_of(page.find(id="cite-1").h3).endswith(payload)
    assert page.find(id="cite-1").mark.get_text() == KARDIA_QUOTE
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


def test_an_unknown_or_deleted_share_link_says_so(client, store):
    owner = browser_of(client)
    record = champions_record()
    turn = store.add_turn(owner, record, generation="g1")
    assert client.get(f"/shared/{turn.id}").status_code == 200
    store.delete(turn.conversation_id, owner)

    for path in (
        f"/shared/{turn.id}",
        "/shared/no-such-answer",
        "/shared/" + "x" * 80,
        f"/shared/{turn.id}/brief.md",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert_private(response)
        page = soup(response)
        assert text_of(page.find(class_="message").p) == NO_ANSWER
        assert record["question"] not in response.text
        home = page.find("a", string="Go to the Spread Advisor")
        assert urljoin(str(response.url), home["href"]) == "http://testserver/"


# ---- downloads ------------------------------------------------------------------------
def test_a_shared_answers_brief_holds_that_answer_only(client, store):
    owner = Owner.browser("x" * 32)
    first = store.add_turn(owner, catalogue_record(), generation="g1", now=ANSWERED)
    second = store.add_turn(
        owner, champions_record(), conversation_id=first.conversation_id, generation="g2", now=ANSWERED
    )

    markdown = client.get(f"/shared/{second.id}/brief.md")

    assert markdown.status_code == 200
    assert_private(markdown)
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    assert markdown.headers["content-disposition"] == (
        'attachment; filename="spread-advisor-answer-what-role-do-clinical-champions-play-in-spreading-an.md"'
    )
    assert second.question in markdown.text and NUFFIELD_URL in markdown.text
    assert first.question not in markdown.text  # neither the first answer nor the title it gave

    word = client.get(f"/shared/{second.id}/brief.docx")

    assert word.status_code == 200
    assert word.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    assert word.headers["content-disposition"].endswith('.docx"')
    paragraphs = "\n".join(p.text for p in Document(io.BytesIO(word.content)).paragraphs)
    assert second.question in paragraphs and first.question not in paragraphs


def test_a_conversations_brief_is_served_to_its_browser_only(store):
    with TestClient(make_app(lambda: store)) as mine, TestClient(make_app(lambda: store)) as other:
        owner = browser_of(mine)
        assert browser_of(other) != owner
        first = store.add_turn(owner, champions_record(), generation="g1", now=ANSWERED)
        second = store.add_turn(
            owner, catalogue_record(), conversation_id=first.conversation_id, generation="g1"
        )
        path = f"/conversations/{first.conversation_id}/brief"

        markdown = mine.get(path + ".md")
        word = mine.get(path + ".docx")
        refused = [
            other.get(path + ".md"),
            other.get(path + ".docx"),
            mine.get("/conversations/forged-id/brief.md"),
        ]

    assert markdown.status_code == 200
    assert_private(markdown)
    assert markdown.headers["content-disposition"] == (
        'attachment; filename="spread-advisor-what-role-do-clinical-champions-play-in-spreading-an.md"'
    )
    assert first.question in markdown.text and second.question in markdown.text
    assert word.status_code == 200
    paragraphs = "\n".join(p.text for p in Document(io.BytesIO(word.content)).paragraphs)
    assert first.question in paragraphs and second.question in paragraphs
    for response in refused:
        assert response.status_code == 404
        assert text_of(soup(response).find(class_="message").p) == NO_CONVERSATION
        assert first.question not in response.text and second.question not in response.text


def test_an_empty_conversation_has_nothing_to_download(client, store):
    owner = browser_of(client)
    with store.engine.begin() as conn:
        conn.execute(
            insert(conversations).values(
                id="empty-one", owner=owner.key, channel="web", title="Nothing yet",
                created_at=ANSWERED, updated_at=ANSWERED,
            )
        )  # fmt: skip

    response = client.get("/conversations/empty-one/brief.md")

    assert response.status_code == 409
    assert text_of(soup(response).find(class_="message").p) == NO_ANSWERS


# ---- the browser cookie ---------------------------------------------------------------
def test_the_browser_cookie_is_given_once_and_kept(client):
    first = client.get("/whoami")
    again = client.get("/whoami")

    given = first.headers["set-cookie"]
    token = client.cookies[BROWSER_COOKIE]
    assert given.startswith(f"{BROWSER_COOKIE}={token};")
    attributes = {part.strip().split("=")[0].lower() for part in given.split(";")[1:]}
    assert attributes == {"max-age", "path", "httponly", "samesite"}  # not Secure over http
    assert "Path=/" in given and "SameSite=Lax" in given
    assert 390 * 86400 <= int(given.split("Max-Age=")[1].split(";")[0]) <= 400 * 86400
    assert len(token) >= 32
    assert "set-cookie" not in again.headers
    assert again.text == first.text == Owner.browser(token).key  # the first request saw it too


def test_the_browser_cookie_is_secure_over_https_and_a_bad_one_replaced(store):
    with TestClient(make_app(lambda: store), base_url="https://testserver") as http:
        assert "; Secure" in http.get("/whoami").headers["set-cookie"]
    with TestClient(make_app(lambda: store)) as http:
        http.cookies.set(BROWSER_COOKIE, "x")
        response = http.get("/whoami")
    assert response.headers["set-cookie"].startswith(f"{BROWSER_COOKIE}=")
    assert response.text != Owner.browser("x").key


def test_owner_for_a_gradio_request():
    from gradio import Request as GradioRequest

    token = "t" * 32
    scope = {"type": "http", "headers": [(b"cookie", f"{BROWSER_COOKIE}={token}".encode())]}
    live = GradioRequest(request=Request(scope), username="alice")
    queued = GradioRequest(username=None, cookies={BROWSER_COOKIE: token})  # as a pickled one is rebuilt

    assert owner_for(live, True) == Owner.user("alice")
    assert owner_for(live, False) == owner_for(queued, False) == Owner.browser(token)
    assert browser_token(queued) == token
    assert owner_for(queued, True) is None
    assert owner_for(GradioRequest(username=None, cookies={}), False) is None


# ---- with a login ---------------------------------------------------------------------
def _signed_in(http: TestClient, token: str, secure_name: bool = False) -> TestClient:
    name = f"access-token-{COOKIE_ID}" if secure_name else f"access-token-unsecure-{COOKIE_ID}"
    http.cookies.set(name, token)
    return http


def test_with_a_login_nobody_signed_in_is_refused(store):
    turn = store.add_turn(Owner.user("alice"), champions_record(), generation="g1")
    app = make_app(lambda: store, login_on=True, tokens={"tok-alice": "alice"})
    paths = [
        f"/shared/{turn.id}",
        f"/shared/{turn.id}/brief.md",
        f"/shared/{turn.id}/brief.docx",
        f"/conversations/{turn.conversation_id}/brief.md",
        f"/conversations/{turn.conversation_id}/brief.docx",
    ]
    with TestClient(app) as anonymous, TestClient(app) as stale:
        _signed_in(stale, "tok-of-a-restarted-server")
        responses = [http.get(path) for http in (anonymous, stale) for path in paths]

    for response in responses:
        assert response.status_code == 401
        assert_private(response)
        assert text_of(soup(response).find(class_="message").p) == SIGN_IN
        assert turn.question not in response.text


def test_with_a_login_any_user_opens_a_share_link_and_only_the_owner_the_conversation(store):
    alices = store.add_turn(Owner.user("alice"), champions_record(), generation="g1")
    bobs = store.add_turn(Owner.user("bob"), catalogue_record(), generation="g1")
    app = make_app(lambda: store, login_on=True, tokens={"tok-alice": "alice", "tok-bob": "bob"})
    with TestClient(app) as http:
        _signed_in(http, "tok-alice", secure_name=True)
        shared = http.get(f"/shared/{bobs.id}")
        shared_brief = http.get(f"/shared/{bobs.id}/brief.md")
        own = http.get(f"/conversations/{alices.conversation_id}/brief.md")
        others = http.get(f"/conversations/{bobs.conversation_id}/brief.md")

    assert shared.status_code == 200 and text_of(soup(shared).h1) == bobs.question
    assert shared_brief.status_code == 200 and bobs.question in shared_brief.text
    assert own.status_code == 200 and alices.question in own.text
    assert others.status_code == 404 and bobs.question not in others.text
    assert text_of(soup(others).find(class_="message").p) == NO_CONVERSATION


# ---- a failing database ---------------------------------------------------------------
def test_a_database_failure_is_a_clear_503(store, caplog):
    turn = store.add_turn(Owner.browser("x" * 32), champions_record(), generation="g1")
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE turns"))

    def unreachable() -> ConversationStore:
        raise DatabaseError("Cannot open postgresql+psycopg://advisor:***@db/advisor: connection refused.")

    caplog.set_level(logging.WARNING, logger="advisor.web.share")
    with TestClient(make_app(lambda: store)) as broken, TestClient(make_app(unreachable)) as down:
        responses = [
            broken.get(f"/shared/{turn.id}"),
            broken.get(f"/conversations/{turn.conversation_id}/brief.md"),
            down.get(f"/shared/{turn.id}/brief.docx"),
        ]

    for response in responses:
        assert response.status_code == 503
        assert_private(response)
        assert text_of(soup(response).find(class_="message").p) == DATABASE_DOWN
        assert "turns" not in response.text and "postgresql" not in response.text
        assert "Traceback" not in response.text
    logged = caplog.text
    assert "no such table: turns" in logged and "connection refused" in logged
    assert turn.id not in logged  # a share link is a secret: not written to the log
