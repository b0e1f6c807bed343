"""Citation verification on the real corpus with the real embedding model."""

from __future__ import annotations

import pytest

from advisor.citations import (
    CitationVerifier,
    apply_policy,
    declines,
    numbers_in,
    parse_markers,
    render_sentences,
    strip_markers,
)
from advisor.types import AnswerSentence, Chunk, Passage

QUESTION = "What funding helps innovations spread?"


@pytest.mark.parametrize(
    "text, markers",
    [
        ("Claim [1].", [1]),
        ("Claim [1, 2] and [3; 4].", [1, 2, 3, 4]),
        ("Claim [1][2].", [1, 2]),
        ("Claim [2-4].", [2, 3, 4]),
        ("Claim [Source 5].", [5]),
        ("No markers, [a] or [ ] or (1).", []),
    ],
)
def test_markers_parse(text, markers):
    assert parse_markers(text) == markers


def test_strip_and_render_markers_round_trip():
    assert (
        strip_markers("Spread needs leadership [1][2]. And money [3, 4].")
        == "Spread needs leadership. And money."
    )
    sentences = [AnswerSentence("Spread needs leadership.", (1, 2)), AnswerSentence("And money.", ())]
    assert render_sentences(sentences) == "Spread needs leadership [1][2]. And money."


def test_numbers_and_declines():
    assert numbers_in("In 2019, 1,200 staff (45 per cent) and 3.5 m.") == {"2019", "1200", "45", "3.5"}
    assert declines("The sources do not cover this question.")
    assert not declines("External funding has been critical [1].")


@pytest.fixture(scope="module")
def evidence(built_advisor):
    """Passages for a real question, the verifier, and one quotable sentence per passage."""
    passages = built_advisor.retriever.retrieve(QUESTION, k=5)
    index = built_advisor.extractive.sentences
    quotes = [index.texts[index.by_chunk[p.chunk.id][0]] for p in passages]
    return passages, CitationVerifier(built_advisor.embedder, index), quotes


def test_quotes_are_supported_and_cite_their_passage(evidence):
    passages, verifier, quotes = evidence
    v = verifier.verify(f"{quotes[0]} [1] {quotes[1][:-1]} [2].", passages)
    assert [s.verdict for s in v.sentences] == ["supported", "supported"]
    assert [c.marker for c in v.citations] == [1, 2]
    assert v.citations[0].passage == passages[0] and v.citations[0].quote == quotes[0]
    assert v.invalid_markers == ()


def test_planted_unsupported_sentence_is_labelled(evidence):
    passages, verifier, quotes = evidence
    planted = "The NHS closed every hospital in England in 2021 to fund robots [1]."
    v = verifier.verify(f"{quotes[0]} [1] {planted}", passages)
    assert [s.verdict for s in v.sentences] == ["supported", "unsupported"]


def test_sentence_from_another_passage_is_unsupported(evidence):
    passages, verifier, quotes = evidence
    # quote of passage 2 attributed to passage 1 (different report)
    other = next(i for i, p in enumerate(passages) if p.chunk.source != passages[0].chunk.source)
    v = verifier.verify(f"{quotes[other]} [1]", passages)
    assert v.sentences[0].verdict == "unsupported"


def test_changed_number_is_unsupported(evidence):
    _, verifier, _ = evidence
    chunk = Chunk(
        "c1", "x.txt", "The academy trained 20 coaches across 10 hospitals in 2019.", {"source": "x.txt"}
    )
    v = verifier.verify(
        "The academy trained 200 coaches across 10 hospitals in 2019 [1].", [Passage(chunk, 1.0, 1)]
    )
    assert v.sentences[0].verdict == "unsupported"
    v = verifier.verify(
        "The academy trained 20 coaches in 10 hospitals in 2019 [1].", [Passage(chunk, 1.0, 1)]
    )
    assert v.sentences[0].verdict == "supported"


def test_fabricated_marker_is_removed_and_reported(evidence):
    passages, verifier, quotes = evidence
    v = verifier.verify(f"{quotes[0]} [9] {quotes[1]} [2][9]", passages)
    assert v.invalid_markers == (9,)
    assert "[9]" not in v.text
    assert [s.verdict for s in v.sentences] == ["uncited", "supported"]
    assert [s.markers for s in v.sentences] == [(), (2,)]
    result = apply_policy(v, "flag", 0.5)
    assert any("[9]" in note for note in result.notes)


def test_uncited_sentence(evidence):
    passages, verifier, quotes = evidence
    v = verifier.verify(f"Here is what the reports say. {quotes[0]} [1]", passages)
    assert [s.verdict for s in v.sentences] == ["uncited", "supported"]


def test_policies(evidence):
    passages, verifier, quotes = evidence
    v = verifier.verify(
        f"{quotes[0]} [1] The NHS closed every hospital in 2021 [1]. Made up claim here.", passages
    )
    assert [s.verdict for s in v.sentences] == ["supported", "unsupported", "uncited"]

    flag = apply_policy(v, "flag", 0.5)
    assert flag.fallback is None and len(flag.sentences) == 3 and "marked" in flag.notes[-1]

    drop = apply_policy(v, "drop", 0.5)
    assert drop.fallback is None
    assert [s.verdict for s in drop.sentences] == ["supported"] and "closed" not in drop.text
    assert "Removed 2 sentences" in drop.notes[-1]

    fallback = apply_policy(v, "fallback", 0.5)
    assert fallback.fallback.kind == "unsupported" and fallback.fallback.detail.startswith("1 of 3")
    assert apply_policy(v, "fallback", 0.3).fallback is None

    garbage = apply_policy(verifier.verify("qwerty zxcv [1]. asdf.", passages), "flag", 0.5)
    assert garbage.fallback.kind == "unsupported" and garbage.fallback.detail.startswith("none")
    assert apply_policy(verifier.verify("", passages), "flag", 0.5).fallback.kind == "empty"


def test_a_plain_decline_is_kept_as_a_refusal(evidence):
    passages, verifier, _ = evidence
    v = verifier.verify("The sources do not cover this question.", passages)
    assert v.declined
    assert apply_policy(v, "fallback", 0.5).fallback is None


# Calibration pin (README: "Citation verification"): paraphrases of a passage must pass,
# sentences from other passages and plausible fabrications must not. Each pair is
# (answer sentence, a phrase that retrieves the passage it is checked against).
PARAPHRASES = [
    (
        "Altogether Better and Flo both got external funding, from the Big Lottery Fund and The Health Foundation.",
        "External funding has been critical Altogether Better Flo Big Lottery Fund",
    ),
    (
        "Watford ran a three-day training course for its RAID team.",
        "Staff training has been another important aspect of the spread of RAID",
    ),
    (
        "The health innovation networks were first set up as Academic Health Science Networks by NHS England in 2013.",
        "Health Innovation Network innovation arm AHSNs 2013",
    ),
    (
        "Spread relies on trust, which credible and relatable communication helps to build.",
        "Effective spread depends on trust communication",
    ),
    (
        "Innovators and decision-makers should plan how the work will be funded once the initial money runs out.",
        "financial incentives funding runs out self-fund",
    ),
]
FABRICATIONS = [
    (
        "The health innovation networks were set up by the Department for Education in 2019.",
        "Health Innovation Network innovation arm AHSNs 2013",
    ),
    (
        "Altogether Better was funded mainly by venture capital investors.",
        "External funding has been critical Altogether Better Flo Big Lottery Fund",
    ),
    (
        "Watford ran a six-week residential training course for its RAID team.",
        "Staff training has been another important aspect of the spread of RAID",
    ),
    ("The report recommends abolishing clinical commissioning groups.", "commissioning"),
    ("Scaling innovation requires a blockchain-based data platform.", "digital technology data"),
]


def test_calibration_on_real_passages(built_advisor):
    verifier = CitationVerifier(built_advisor.embedder, built_advisor.extractive.sentences)

    def verdict(sentence: str, probe: str) -> str:
        passage = built_advisor.retriever.retrieve(probe, k=1)[0]
        return verifier.verify(f"{sentence[:-1]} [1].", [passage]).sentences[0].verdict

    assert [verdict(s, p) for s, p in PARAPHRASES] == ["supported"] * len(PARAPHRASES)
    assert [verdict(s, p) for s, p in FABRICATIONS] == ["unsupported"] * len(FABRICATIONS)
