"""The page's saved-conversation handlers called directly: every answer saved in its owner's
conversation, reopened as it was shown, renamed, deleted; another owner's ids find nothing."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine

from advisor.feedback import FeedbackStore
from advisor.history import NO_CONVERSATION, ConversationStore, Owner
from advisor.types import Answer
from advisor.web.handlers import KEEP, NO_HISTORY, NOT_SAVED, PageHandlers
from advisor.web.render import render_evidence

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


def test_a_saved_answer_rebuilds_to_the_same_record(built_advisor):
    answer = built_advisor.ask(FIRST)
    record = answer.to_record()
    rebuilt = Answer.from_record(record).to_record()
    for key in ("question", "answer", "refused", "route", "sentences", "citations", "notes"):
        assert rebuilt[key] == record[key], key
    assert [p["text"] for p in rebuilt["passages"]] == [p["text"] for p in record["passages"]]
    assert render_evidence(Answer.from_record(record)) == render_evidence(answer)


def test_another_owner_cannot_open_rename_or_delete_it(page, store):
    mine = ask(page, FIRST)
    cid = mine.answers["conversation"]
    refused = page.open_conversation(cid, BOB)
    assert refused.history is KEEP and refused.status == NO_CONVERSATION
    assert page.rename_conversation("Taken", {"conversation": cid}, BOB).status == NO_CONVERSATION
    _, listing = page.delete_conversation({"conversation": cid}, BOB)
    assert listing.status == NO_CONVERSATION and listing.choices == []
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

    cleared, after = page.delete_conversation(first.answers, ALICE)
    assert cleared.history == [] and cleared.answers == {}
    assert after.choices == [] and "Deleted" in after.status
    assert store.list() == []


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
    assert "cannot be read" in page.listing(ALICE).status
