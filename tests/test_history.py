"""Saved conversations (`advisor.history`) on SQLite and on a real PostgreSQL: per owner, forged
ids, rename, deletion (gone from the database) and retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from advisor.db import conversations, turns
from advisor.errors import AdvisorError
from advisor.history import NO_CONVERSATION, ConversationStore, NotFoundError, Owner, title_from

ALICE, BOB = Owner.user("alice"), Owner.user("bob")


def record(question: str, refused: bool = False) -> dict:
    return {"question": question, "answer": f"An answer to {question}", "refused": refused, "citations": []}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite3'}"
    return request.getfixturevalue("fresh_postgres")


def rows(store: ConversationStore) -> tuple[int, int]:
    """(conversations, turns) actually in the database."""
    with store.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(conversations)).scalar_one(),
            conn.execute(select(func.count()).select_from(turns)).scalar_one(),
        )


def test_turns_are_kept_in_order_per_owner_and_survive_a_new_store(db_url):
    store = ConversationStore.open(db_url)
    first = store.add_turn(ALICE, record("How did DAFNE spread?"), generation="advisor_g1")
    second = store.add_turn(ALICE, record("And who paid?"), conversation_id=first.conversation_id)
    store.add_turn(BOB, record("Bob's own question"))

    reopened = ConversationStore.open(db_url)  # as after a restart
    mine = reopened.list(ALICE)
    assert [(c.id, c.title, c.turns, c.user) for c in mine] == [
        (first.conversation_id, "How did DAFNE spread?", 2, "alice")
    ]
    got = reopened.get(first.conversation_id, ALICE)
    assert [t.question for t in got.turns] == ["How did DAFNE spread?", "And who paid?"]
    assert [t.position for t in got.turns] == [0, 1]
    assert got.turns[0].generation == "advisor_g1"
    assert got.turns[1].id == second.id
    assert len(reopened.list()) == 2  # the maintainers' CLI sees every owner's


def test_another_owners_conversation_is_not_found_whatever_is_tried(db_url):
    store = ConversationStore.open(db_url)
    alices = store.add_turn(ALICE, record("Alice's question")).conversation_id
    for attempt in (
        lambda: store.get(alices, BOB),
        lambda: store.rename(alices, BOB, "taken"),
        lambda: store.delete(alices, BOB),
        lambda: store.add_turn(BOB, record("appended"), conversation_id=alices),
        lambda: store.get("forged-id-that-does-not-exist", ALICE),
    ):
        with pytest.raises(NotFoundError) as caught:
            attempt()
        assert str(caught.value) == NO_CONVERSATION  # the same words: nothing learnt
    kept = store.get(alices, ALICE)
    assert kept.title == "Alice's question" and len(kept.turns) == 1
    assert store.list(BOB) == []


def test_a_browser_owner_is_stored_as_a_hash_of_its_cookie(db_url):
    store = ConversationStore.open(db_url)
    token = "secret-cookie-value"
    store.add_turn(Owner.browser(token), record("From a browser"))
    (summary,) = store.list(Owner.browser(token))
    assert token not in summary.owner and summary.owner.startswith("browser:")
    assert summary.user is None
    assert store.list(Owner.browser("another-browser")) == []


def test_rename_trims_and_refuses_an_empty_title(db_url):
    store = ConversationStore.open(db_url)
    cid = store.add_turn(ALICE, record("q")).conversation_id
    assert store.rename(cid, ALICE, "  Business case   notes ").title == "Business case notes"
    with pytest.raises(AdvisorError, match="needs a title"):
        store.rename(cid, ALICE, "   ")
    assert store.get(cid, ALICE).title == "Business case notes"


def test_deleting_removes_the_conversation_and_its_answers_from_the_database(db_url):
    store = ConversationStore.open(db_url)
    first = store.add_turn(ALICE, record("one"))
    store.add_turn(ALICE, record("two"), conversation_id=first.conversation_id)
    other = store.add_turn(BOB, record("Bob's"))
    assert rows(store) == (2, 3)

    store.delete(first.conversation_id, ALICE)
    assert rows(store) == (1, 1)
    with pytest.raises(NotFoundError):
        store.turn(first.id)  # its share link is gone too
    assert store.turn(other.id)[0].question == "Bob's"
    with pytest.raises(NotFoundError):
        store.delete(first.conversation_id, ALICE)  # twice: not found, no error otherwise


def test_retention_deletes_conversations_untouched_for_longer(db_url):
    now = datetime.now(UTC)
    store = ConversationStore.open(db_url)
    old = store.add_turn(ALICE, record("old"), now=now - timedelta(days=40))
    revived = store.add_turn(BOB, record("old but continued"), now=now - timedelta(days=40))
    store.add_turn(
        BOB, record("recent"), conversation_id=revived.conversation_id, now=now - timedelta(days=2)
    )
    fresh = store.add_turn(ALICE, record("new"), now=now)

    assert ConversationStore.open(db_url).purge() == 0  # no retention set: nothing goes
    kept = ConversationStore.open(db_url, retention_days=30)  # purges as it opens
    assert {c.id for c in kept.list()} == {revived.conversation_id, fresh.conversation_id}
    assert rows(kept) == (2, 3)
    with pytest.raises(NotFoundError):
        kept.turn(old.id)
    assert kept.purge(now=now + timedelta(days=29)) == 1  # the continued one, last touched 2 days ago
    assert {c.id for c in kept.list()} == {fresh.conversation_id}


def test_a_share_id_finds_its_answer_and_conversation_without_an_owner(db_url):
    store = ConversationStore.open(db_url)
    turn = store.add_turn(ALICE, record("Shared question", refused=True), generation="g7")
    found, summary = store.turn(turn.id)
    assert (found.question, found.refused, found.generation) == ("Shared question", True, "g7")
    assert summary.id == turn.conversation_id
    for bad in ("", "x" * 41, "no-such-answer"):
        with pytest.raises(NotFoundError):
            store.turn(bad)


def test_new_ids_are_long_random_and_never_read_as_a_command_line_option():
    from advisor.history import new_id, valid_id

    ids = [new_id() for _ in range(3000)]  # about 47 would start with "-" if nothing prevented it
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 22 and valid_id(i) and not i.startswith("-") for i in ids)


def test_titles_come_from_the_first_question_cut_at_a_word():
    assert title_from("  How   do I\nspread? ") == "How do I spread?"
    long = "word " * 40
    cut = title_from(long)
    assert cut.endswith("…") and len(cut) <= 81 and "wor…" not in cut
    assert title_from("") == "Untitled conversation"


def test_answers_added_to_one_conversation_at_once_are_numbered_one_after_the_other(db_url):
    import threading

    cid = ConversationStore.open(db_url).add_turn(ALICE, record("first")).conversation_id
    stores = [ConversationStore.open(db_url) for _ in range(3)]  # as three tabs, or replicas
    start = threading.Barrier(len(stores))
    failures: list[BaseException] = []

    def append(store: ConversationStore, n: int) -> None:
        start.wait()
        try:
            for i in range(8):
                store.add_turn(ALICE, record(f"tab {n} question {i}"), conversation_id=cid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=append, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    positions = [t.position for t in ConversationStore.open(db_url).get(cid, ALICE).turns]
    assert positions == list(range(1 + 3 * 8))


def test_a_slack_threads_conversation_created_twice_at_once_keeps_both_answers(db_url):
    import threading

    stores = [ConversationStore.open(db_url) for _ in range(2)]
    start = threading.Barrier(2)
    owner = Owner.slack("T1", "U1")

    def first_answer(store: ConversationStore, n: int) -> None:
        start.wait()
        store.add_turn(owner, record(f"answer {n}"), create_as="slack-thread-1", channel="slack")

    threads = [threading.Thread(target=first_answer, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = stores[0].get("slack-thread-1", owner)
    assert sorted(t.question for t in got.turns) == ["answer 0", "answer 1"]
    assert [t.position for t in got.turns] == [0, 1]


def test_ids_that_could_not_be_ours_are_not_looked_up(db_url):
    store = ConversationStore.open(db_url)
    cid = store.add_turn(ALICE, record("q")).conversation_id
    for bad in ("x\x00y", "../etc", "a b", "é"):
        with pytest.raises(NotFoundError):
            store.turn(bad)
        with pytest.raises(NotFoundError):
            store.get(bad, ALICE)
    assert store.rename(cid, ALICE, "nul\x00 in a title").title == "nul in a title"
    assert store.add_turn(ALICE, record("a \x00 question")).question == "a  question"
