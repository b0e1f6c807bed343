"""`Guidance` keeps the last good map serving when a reload finds the file broken."""

from __future__ import annotations

from advisor.guidance import Guidance
from tests.guidance.helpers import NUFFIELD, mutate, point_at, read_map


def test_a_broken_reload_keeps_the_previous_map(corpus_copy):
    holder = Guidance(corpus_copy)
    first = holder.reload()
    assert first is not None and holder.error is None
    quote = point_at(read_map(corpus_copy)["themes"], NUFFIELD, 359)[1]["quote"]
    mutate(corpus_copy, lambda ts: point_at(ts, NUFFIELD, 359)[1].update(quote="Perseverance is optional."))
    assert holder.reload() is first
    assert holder.current is first
    assert "quote not found in section" in holder.error and f"{NUFFIELD} line 359" in holder.error
    assert holder.themes(theme="patience-and-persistence")  # still served
    mutate(corpus_copy, lambda ts: point_at(ts, NUFFIELD, 359)[1].update(quote=quote))
    second = holder.reload()
    assert second is not None and second is not first and holder.error is None


def test_a_first_load_that_fails_serves_nothing_and_says_why(corpus_copy):
    mutate(corpus_copy, lambda ts: ts[0].update(audiences=["everyone"]))
    holder = Guidance(corpus_copy)
    assert holder.reload() is None
    assert holder.themes() == []
    assert "unknown audience 'everyone'" in holder.error


def test_case_names_given_to_the_holder_are_used(corpus_copy):
    holder = Guidance(corpus_copy, case_names=["KardiaMobile"])
    assert holder.reload() is None
    assert "unknown case 'Lantum'" in holder.error
