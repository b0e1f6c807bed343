"""The page's saved-conversation handlers called directly: every answer saved in its owner's
conversation, reopened as it was shown, renamed, deleted; another owner's ids find nothing."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine

from advisor.feedback import FeedbackStore
from advisor.history import NO_CONVERSATION, ConversationStore, Owner
from advisor.types import Answer
from advisor.web.handlers import DELETED_MEANWHILE, KEEP, NO_HISTORY, NOT_SAVED, UNREADABLE, PageHandlers
from advisor.web.render import render_answer_markdown, render_evidence

ALICE, BOB = Owner.user("alice"), Owner.browser("bobs-cookie")
FIRST = "How did KardiaMobile reach patients?"
FOLLOW = "What evidence did they collect?"


@pytest.fixture
def store(tmp_path):
    return ConversationStore.open(f"sqlite:///{tmp_path / 'advisor.sqlite3'}")


@pytest.fixture
def page(built_advisor, built_settings, tmp_path, store):
    feedback = FeedbackStore(f"sqlite:///{tmp_path / 'advisor.sqlite3'}")
    return PageHandlers(built_advisor, built_settings, feedback, conversations=store)


def ask(page, question, history=None, answers=None, owner=ALICE):
    return list(page.ask(question, history or [], [], [], answers or {}, owner))[-1]


def test_each_answer_is_saved_in_one_conversation_with_its_share_link(page, store, built_advisor):
    first = ask(page, FIRST)
    follow = ask(page, FOLLOW, first.history, first.answers)
    cid = follow.answers["conversation"]
    assert cid == first.answers["conversation"]
    saved = store.get(cid, ALICE)
    assert [t.question for t in saved.turns] == [FIRST, FOLLOW]
    assert saved.turns[0].generation == built_advisor.index.generation
    latest = follow.answers["latest"]
    assert latest["answer_id"] == saved.turns[1].id
    assert f"shared/{saved.turns[1].id}" in follow.history[-1]["content"]
    assert f"shared/{saved.turns[1].id}#cite-1" in follow.evidence
    assert saved.turns[1].record["citations"] == latest["citations"]


def test_a_reopened_conversation_shows_what_was_shown(page):
    first = ask(page, FIRST)
    follow = ask(page, FOLLOW, first.history, first.answers)
    reopened = page.open_conversation(follow.answers["conversation"], ALICE)
    assert reopened.history == follow.history
    assert reopened.evidence == follow.evidence
    assert reopened.answers["latest"]["citations"] == follow.answers["latest"]["citations"]
    assert page.latest_conversation(ALICE).history == follow.history  # what a reload shows


@pytest.mark.parametrize(
    "question",
    [FIRST, "What is the boiling point of mercury on Venus?", "Which case studies spread through a network?"],
)
def test_a_saved_answer_rebuilds_to_the_same_record(built_advisor, question):
    answer = built_advisor.ask(question)
    record = answer.to_record()
    rebuilt = Answer.from_record(record).to_record()
    for key in ("question", "answer", "refused", "route", "sentences", "citations", "passages", "notes"):
        assert rebuilt[key] == record[key], key
    assert rebuilt.get("rows") == record.get("rows") and rebuilt.get("heading") == record.get("heading")
    assert render_evidence(Answer.from_record(record)) == render_evidence(answer)
    assert render_answer_markdown(Answer.from_record(record)) == render_answer_markdown(answer)


def test_another_owner_cannot_open_rename_or_delete_it(page, store):
    mine = ask(page, FIRST)
    cid = mine.answers["conversation"]
    refused = page.open_conversation(cid, BOB)
    assert refused.history is KEEP and refused.status == NO_CONVERSATION
    assert page.rename_conversation("Taken", {"conversation": cid}, BOB).status == NO_CONVERSATION
    for confirmed in (None, cid):  # the first press asks, the second deletes: neither for Bob
        shown, listing, confirming = page.delete_conversation({"conversation": cid}, BOB, confirmed)
        assert listing.status == NO_CONVERSATION and listing.choices == [] and confirming == ""
        assert shown.history is KEEP
    # a forged id in the answers state: the answer goes to a new conversation of Bob's own
    theirs = ask(page, FOLLOW, answers={"conversation": cid}, owner=BOB)
    assert theirs.answers["conversation"] != cid
    assert [t.question for t in store.get(cid, ALICE).turns] == [FIRST]
    assert store.get(cid, ALICE).title == FIRST


def test_listing_rename_and_delete(page, store):
    assert page.listing(ALICE).status == NO_HISTORY
    first = ask(page, FIRST)
    listing = page.listing(ALICE, first.answers)
    assert [v for _, v in listing.choices] == [first.answers["conversation"]]
    assert re.match(re.escape(FIRST) + r" \(1 answer, .* UTC\)$", listing.choices[0][0])
    assert listing.value == first.answers["conversation"]
    assert f"conversations/{listing.value}/brief.docx" in listing.links

    renamed = page.rename_conversation("  Kardia notes ", first.answers, ALICE)
    assert renamed.choices[0][0].startswith("Kardia notes (") and "Renamed" in renamed.status
    assert "needs a title" in page.rename_conversation(" ", first.answers, ALICE).status

    cid = first.answers["conversation"]
    kept, asked, confirming = page.delete_conversation(first.answers, ALICE)
    assert kept.history is KEEP and confirming == cid
    assert "Kardia notes" in asked.status and "Press Delete again" in asked.status
    assert [c.id for c in store.list()] == [cid]  # nothing deleted on the first press

    cleared, after, confirming = page.delete_conversation(first.answers, ALICE, confirming)
    assert cleared.history == [] and cleared.answers == {} and confirming == ""
    assert after.choices == [] and "Deleted" in after.status
    assert store.list() == []
    nothing = page.delete_conversation({}, ALICE)
    assert nothing[0].history is KEEP and "no saved conversation" in nothing[1].status


def test_without_an_owner_the_answer_is_shown_and_says_it_is_not_saved(page, store):
    last = ask(page, FIRST, owner=None)
    assert NOT_SAVED in last.history[-1]["content"] and "conversation" not in last.answers
    assert "cite-marker" in last.history[-1]["content"]
    assert store.list() == []


def test_a_database_that_cannot_be_written_loses_no_answer(page, tmp_path):
    broken = tmp_path / "no-such-folder" / "advisor.sqlite3"
    page.conversations = ConversationStore(create_engine(f"sqlite:///{broken}"))
    last = ask(page, FIRST)
    bubble = last.history[-1]["content"]
    assert "cite-marker" in bubble and "could not be saved" in bubble
    assert "conversation" not in last.answers and "shared/" not in last.evidence
    assert page.listing(ALICE).status == UNREADABLE
    held = {"conversation": "a-saved-conversation-id"}
    assert page.open_conversation("a-saved-conversation-id", ALICE).status == UNREADABLE
    assert page.rename_conversation("New", held, ALICE).status == UNREADABLE
    assert page.delete_conversation(held, ALICE)[1].status == UNREADABLE


def test_a_conversation_deleted_in_another_tab_is_not_continued_silently(page, store):
    first = ask(page, FIRST)
    store.delete(first.answers["conversation"], ALICE)  # as from another tab
    follow = ask(page, FOLLOW, first.history, first.answers)
    assert [m["role"] for m in follow.history] == ["user", "assistant"]  # the earlier turn is gone
    assert DELETED_MEANWHILE in follow.history[-1]["content"]
    (fresh,) = store.list(ALICE)
    assert fresh.id == follow.answers["conversation"] and fresh.title == FOLLOW
    (turn,) = store.get(fresh.id, ALICE).turns
    assert turn.record["query"] == FOLLOW  # not rewritten with the deleted question
