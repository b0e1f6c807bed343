"""Shareable answers and downloads, served beside the Gradio page as plain Starlette routes.

- `GET /shared/{turn_id}`: one saved answer as a read-only page (its question, its sentences
  with their markers, one card per citation with the passage and the quote marked), from its
  share link (the turn's id in `advisor.history`). Whoever has the link may read that answer,
  with a login any signed-in user; never the rest of its conversation.
- `GET /shared/{turn_id}/brief.md|.docx`: that answer's brief (`advisor.brief`).
- `GET /conversations/{conversation_id}/brief.md|.docx`: a whole conversation's brief, for its
  owner only (`owner_for`); anyone else gets the same "not found" as for an id that never existed.

Without a login a conversation belongs to a browser: `BrowserCookie` gives each browser a random
cookie, and only its hash is stored (`Owner.browser`). Every page here is marked no-store,
noindex and no-referrer, so a share link does not leak into caches, search engines or other
sites' logs.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from advisor.brief import brief_docx, brief_markdown, report_urls
from advisor.db import DatabaseError, exc_line
from advisor.history import (
    NO_CONVERSATION,
    Conversation,
    ConversationStore,
    EmptyConversationError,
    NotFoundError,
    Owner,
    title_from,
)
from advisor.web.render import TEMPLATES, locate

log = logging.getLogger(__name__)

BROWSER_COOKIE = "advisor_browser"
BROWSER_COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie
_STATE_KEY = "advisor_browser"  # where the middleware leaves a new browser's token (request.state)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")  # what BrowserCookie hands out; anything else is replaced

SLUG_CHARS = 60  # a download's name holds its question or title up to here

SIGN_IN = "Sign in to the Spread Advisor first, then open this link again."
DATABASE_DOWN = (
    "The advisor's database cannot be reached just now, so this cannot be shown. "
    "Please try again in a few minutes."
)

HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
# the pages have no scripts, forms or frames of their own, and may not be framed
PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
FORMATS = {
    "md": ("text/markdown; charset=utf-8", brief_markdown),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", brief_docx),
}

_templates = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# ---- who is asking --------------------------------------------------------------------
class BrowserCookie:
    """ASGI middleware: a browser without a valid `advisor_browser` cookie gets a new random one.

    The cookie is HttpOnly, SameSite=Lax, for the whole site and about 400 days (Secure when the
    request came over https). The request that made it sees it too, through `browser_token`.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or _valid(Request(scope).cookies.get(BROWSER_COOKIE)):
            await self.app(scope, receive, send)
            return
        token = secrets.token_urlsafe(24)
        scope.setdefault("state", {})[_STATE_KEY] = token
        cookie = _set_cookie(token, secure=scope.get("scheme") == "https")

        async def send_with_cookie(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _valid(token: str | None) -> bool:
    return bool(token) and _TOKEN.fullmatch(token) is not None


def _set_cookie(token: str, *, secure: bool) -> bytes:
    value = f"{BROWSER_COOKIE}={token}; Max-Age={BROWSER_COOKIE_MAX_AGE}; Path=/; HttpOnly; SameSite=Lax"
    return (value + ("; Secure" if secure else "")).encode("latin-1")


def browser_token(request) -> str | None:
    """The browser's cookie token (a Starlette request or a `gr.Request`), or the one
    `BrowserCookie` has just made for this request; None without either."""
    cookies = getattr(request, "cookies", None) or {}
    token = cookies.get(BROWSER_COOKIE)
    if _valid(token):
        return token
    state = getattr(request, "state", None)
    made = getattr(state, _STATE_KEY, None) if state is not None else None
    return made if _valid(made) else None


def owner_for(request, login_on: bool) -> Owner | None:
    """Whose conversations a request may see: the signed-in user when the page has a login
    (None when nobody is signed in), else the browser by its cookie (None without one).

    `request` is a Starlette request (the routes here) or a `gr.Request` (Gradio's handlers,
    which carry the signed-in user's name)."""
    if login_on:
        user = _signed_in(request)
        return Owner.user(user) if user else None
    token = browser_token(request)
    return Owner.browser(token) if token else None


def _signed_in(request) -> str | None:
    """The signed-in user's name: Gradio's for a `gr.Request`; for a Starlette request, looked
    up as Gradio's own `/user` route does, in the app's tokens by its access-token cookies."""
    if not isinstance(request, Request):
        return getattr(request, "username", None) or None
    app = request.scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if not tokens or cookie_id is None:
        return None
    token = request.cookies.get(f"access-token-{cookie_id}") or request.cookies.get(
        f"access-token-unsecure-{cookie_id}"
    )
    user = tokens.get(token) if token else None
    return user if isinstance(user, str) and user else None


# ---- what the page shows --------------------------------------------------------------
@dataclass(frozen=True)
class Card:
    """One citation of a shared answer, with its passage cut around the quote (when found)."""

    marker: int
    title: str
    url: str
    publisher: str
    year: str
    section: str
    case_study: str
    page: str
    quote: str
    before: str  # the passage up to the quote; the whole passage when the quote is not in it
    marked: str  # the quote as the passage has it ("" when not found)
    after: str


def cards(record: Mapping[str, Any], urls: Mapping[str, str]) -> list[Card]:
    """The citation cards of an answer record, each citation's passage found by its chunk id."""
    passages = {p.get("chunk_id"): str(p.get("text") or "") for p in record.get("passages") or []}
    found = []
    for cited in record.get("citations") or []:
        quote = str(cited.get("quote") or "")
        passage = passages.get(cited.get("chunk_id"), "")
        span = locate(passage, quote) if passage and quote else None
        before, marked, after = (
            (passage[: span[0]], passage[span[0] : span[1]], passage[span[1] :])
            if span
            else (passage, "", "")
        )
        url = urls.get(str(cited.get("source") or ""), "")
        found.append(
            Card(
                marker=int(cited.get("marker") or 0),
                title=str(cited.get("title") or cited.get("source") or "Untitled report"),
                url=url if url.startswith(("https://", "http://")) else "",
                publisher=str(cited.get("publisher") or ""),
                year=str(cited.get("year") or ""),
                section=str(cited.get("section") or ""),
                case_study=str(cited.get("case_study") or ""),
                page=str(cited.get("page") or ""),
                quote=quote,
                before=before,
                marked=marked,
                after=after,
            )
        )
    return found


def answer_kind(record: Mapping[str, Any]) -> str:
    """How the answer's body is drawn: "text" (a refusal, or an answer without sentences),
    "rows" (a catalogue or guidance answer's heading and rows) or "sentences"."""
    if record.get("refused"):
        return "text"
    if record.get("rows"):
        return "rows"
    return "sentences" if record.get("sentences") else "text"


def answered_at(moment: datetime) -> str:
    """A turn's time as the page shows it: "5 March 2025 at 14:07 UTC"."""
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%B %Y} at {moment:%H:%M} UTC"


def _render(name: str, **values: Any) -> str:
    return str(_templates.get_template(name).render(**values))


def _page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(
        _render(name, **values),
        status_code=status,
        headers={**HEADERS, "Content-Security-Policy": PAGE_POLICY},
    )


def _message(title: str, text: str, status: int, home: str) -> HTMLResponse:
    return _page("share_message.html.j2", status, title=title, text=text, home=home)


def download_name(prefix: str, text: str, extension: str) -> str:
    """A readable ASCII file name: "spread-advisor-answer-what-role-do-champions-play.md"."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(slug) > SLUG_CHARS:  # cut at a word
        slug = slug[: SLUG_CHARS + 1].rsplit("-", 1)[0] or slug[:SLUG_CHARS]
    return f"{prefix}-{slug or 'brief'}.{extension}"


# ---- the routes -----------------------------------------------------------------------
class SharedPages:
    """The endpoints behind `share_routes`: each checks the login, reads the store, renders, and
    turns the store's refusals and failures into pages a person can read."""

    def __init__(
        self, store_factory: Callable[[], ConversationStore], *, login_on: bool, corpus_dir: Path
    ) -> None:
        self.store_factory = store_factory
        self.login_on = login_on
        self.corpus_dir = Path(corpus_dir)

    def answer(self, request: Request) -> Response:
        """The read-only page of one shared answer."""
        turn_id = request.path_params["turn_id"]
        return self._guarded(request, "a shared answer", "../", lambda: self._answer_page(turn_id))

    def answer_brief(self, request: Request, extension: str) -> Response:
        """One shared answer's brief, as a download."""
        turn_id = request.path_params["turn_id"]
        return self._guarded(
            request, "a shared answer's brief", "../../", lambda: self._answer_brief(turn_id, extension)
        )

    def conversation_brief(self, request: Request, extension: str) -> Response:
        """A whole conversation's brief, for its owner only."""
        conversation_id = request.path_params["conversation_id"]
        owner = owner_for(request, self.login_on)
        return self._guarded(
            request,
            "a conversation's brief",
            "../../",
            lambda: self._conversation_brief(conversation_id, owner, extension),
        )

    def _guarded(self, request: Request, what: str, home: str, produce: Callable[[], Response]) -> Response:
        """`produce`'s response, or the page that says why not (`home`: the advisor, relative)."""
        if self.login_on and _signed_in(request) is None:
            return _message("Please sign in", SIGN_IN, 401, home)
        try:
            return produce()
        except NotFoundError as exc:
            return _message("Not found", str(exc), 404, home)
        except EmptyConversationError as exc:
            return _message("Nothing to download", str(exc), 409, home)
        except (DatabaseError, SQLAlchemyError) as exc:  # the id is a share link: not logged
            log.warning("could not serve %s: the database failed: %s", what, exc_line(exc))
            return _message("Not available just now", DATABASE_DOWN, 503, home)

    def _answer_page(self, turn_id: str) -> Response:
        turn, _conversation = self.store_factory().turn(turn_id)
        return _page(
            "share.html.j2",
            turn=turn,
            record=turn.record,
            kind=answer_kind(turn.record),
            cards=cards(turn.record, report_urls(self.corpus_dir)),
            answered=answered_at(turn.created_at),
            home="../",
        )

    def _answer_brief(self, turn_id: str, extension: str) -> Response:
        turn, summary = self.store_factory().turn(turn_id)
        # this answer alone: the conversation's title (its first question), other answers and
        # the owner's name are not the link's to show
        alone = Conversation(replace(summary, title=title_from(turn.question), user=None, turns=1), [turn])
        name = download_name("spread-advisor-answer", turn.question, extension)
        return self._download(alone, extension, name, only=turn.id)

    def _conversation_brief(self, conversation_id: str, owner: Owner | None, extension: str) -> Response:
        if owner is None:  # neither a login nor a cookie: no conversation is this browser's
            raise NotFoundError(NO_CONVERSATION)
        conversation = self.store_factory().get(conversation_id, owner)
        name = download_name("spread-advisor", conversation.title, extension)
        return self._download(conversation, extension, name)

    def _download(
        self, conversation: Conversation, extension: str, filename: str, only: str | None = None
    ) -> Response:
        media_type, render = FORMATS[extension]
        body = render(conversation, report_urls(self.corpus_dir), only=only)
        headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'}
        return Response(body, media_type=media_type, headers=headers)


def share_routes(
    store_factory: Callable[[], ConversationStore], *, login_on: bool, corpus_dir: Path
) -> list[Route]:
    """The routes of shared answers and downloads, for the web app (`Starlette(routes=...)`, or
    Gradio's `launch(app_kwargs={"routes": ...})`). `store_factory` is called on every request."""
    pages = SharedPages(store_factory, login_on=login_on, corpus_dir=corpus_dir)
    routes = [Route("/shared/{turn_id}", pages.answer, methods=["GET"], name="shared_answer")]
    for extension in FORMATS:
        routes += [
            Route(
                f"/shared/{{turn_id}}/brief.{extension}",
                partial(pages.answer_brief, extension=extension),
                methods=["GET"],
                name=f"shared_answer_{extension}",
            ),
            Route(
                f"/conversations/{{conversation_id}}/brief.{extension}",
                partial(pages.conversation_brief, extension=extension),
                methods=["GET"],
                name=f"conversation_brief_{extension}",
            ),
        ]
    return routes
