"""End to end on the real corpus, real model, real Chroma: questions with a known right source."""

from __future__ import annotations

import re

import pytest

from advisor.advisor import clean_question
from advisor.errors import InvalidQuestionError
from advisor.types import Filters

NUFFIELD = "nuffield-2020-achieving-scale-and-spread.txt"
ATO = "against-the-odds-2018-report.txt"
ATO_NEWS = "against-the-odds-2018-news-release.txt"
CONFED = "nhs-confederation-2023-scaling-innovation.txt"
HIN = "hin-south-london-2025-technology-enabled-service-change.txt"

# (question, acceptable sources: at least one citation must come from one of them)
KNOWN = [
    ("What does the KardiaMobile device detect and who is it sold to?", {NUFFIELD}),
    ("How many NHS trusts have adopted Nervecentre's electronic patient record?", {NUFFIELD}),
    ("What do people with type 1 diabetes learn on the DAFNE course?", {ATO, ATO_NEWS}),
    ("What are the three core pillars for adopting a proven innovation?", {CONFED}),
    ("How was ambient voice technology piloted in London?", {HIN}),
    ("How did the Improving Access to Psychological Therapies programme scale nationally?", {ATO}),
    ("What makes a good pilot of a technology-enabled service change?", {HIN}),
    ("What do Altogether Better health champions do?", {ATO}),
    ("How does Lantum help GP practices fill sessions?", {NUFFIELD}),
    ("What is the Florence telehealth service and how does it use text messages?", {ATO}),
    ("What did Patients Know Best learn about how long success takes?", {NUFFIELD}),
    ("How did Outcomes Based Healthcare measure population health outcomes?", {NUFFIELD}),
    ("What does RAID liaison psychiatry do in hospitals?", {ATO}),
]

OUT_OF_SCOPE = [
    "What is the recipe for a good sourdough bread?",
    "Who won the football World Cup in 1966?",
]


@pytest.mark.parametrize("question,sources", KNOWN, ids=[q[:40] for q, _ in KNOWN])
def test_known_questions_cite_the_right_report(built_advisor, question, sources):
    answer = built_advisor.ask(question)
    assert not answer.refused, f"refused: {question}"
    cited = {c.passage.chunk.source for c in answer.citations}
    assert cited & sources, f"{question!r} cited {cited}, expected one of {sources}"


def test_every_marker_maps_to_a_verbatim_quote_of_its_passage(built_advisor):
    answer = built_advisor.ask("How did innovators persuade late adopters to take up their product?")
    markers = [int(m) for m in re.findall(r"\[(\d+)\]", answer.text)]
    assert markers, answer.text
    assert sorted(markers) == [c.marker for c in answer.citations]
    for citation in answer.citations:
        assert citation.quote in citation.passage.chunk.text
        assert citation.quote in answer.text
    assert all(s.verdict == "supported" for s in answer.sentences)


@pytest.mark.parametrize("question", OUT_OF_SCOPE)
def test_questions_the_reports_do_not_cover_are_refused(built_advisor, question):
    answer = built_advisor.ask(question)
    assert answer.refused
    assert answer.citations == ()
    assert "do not cover" in answer.text
    assert answer.passages, "a refusal still lists the closest passages"


def test_json_record_has_the_contract_fields(built_advisor):
    record = built_advisor.ask("Why do innovations fail to spread beyond early adopters?").to_record()
    assert {"question", "answer", "refused", "citations", "passages", "timings_ms"} <= set(record)
    assert set(record["timings_ms"]) >= {"retrieve", "answer", "total"}
    assert [p["rank"] for p in record["passages"]] == list(range(1, len(record["passages"]) + 1))
    for c in record["citations"]:
        assert {"marker", "source", "title", "section", "case_study", "chunk_id", "quote"} <= set(c)
    passage_ids = {p["chunk_id"] for p in record["passages"]}
    assert {c["chunk_id"] for c in record["citations"]} <= passage_ids


def test_filters_restrict_to_a_report_and_a_case_study(built_advisor):
    only_hin = built_advisor.ask("How should a pilot be evaluated?", filters=Filters(sources=(HIN,)))
    assert only_hin.passages and {p.chunk.source for p in only_hin.passages} == {HIN}
    cases = built_advisor.case_study_names()
    assert "KardiaMobile" in cases
    only_case = built_advisor.ask(
        "What evidence was gathered?", filters=Filters(case_studies=("KardiaMobile",))
    )
    assert {p.chunk.case_study for p in only_case.passages} == {"KardiaMobile"}


def test_diversity_cap_limits_passages_from_one_report(built_advisor):
    answer = built_advisor.ask("What helps an innovation spread across the NHS?", k=5)
    per_source: dict[str, int] = {}
    for p in answer.passages:
        per_source[p.chunk.source] = per_source.get(p.chunk.source, 0) + 1
    assert max(per_source.values()) <= built_advisor.settings.max_per_document


def test_follow_up_is_condensed_with_the_previous_question(built_advisor):
    history = [
        {"role": "user", "content": "How did KardiaMobile reach patients?"},
        {"role": "assistant", "content": [{"type": "text", "text": "It was sold directly [1]."}]},
    ]
    answer = built_advisor.ask("What about the evidence for it?", history=history)
    assert "KardiaMobile" in answer.query
    assert any(p.chunk.case_study == "KardiaMobile" for p in answer.passages)


def test_stream_yields_text_then_the_answer(built_advisor):
    events = list(built_advisor.stream("What is a clinical champion's role in spreading innovation?"))
    *deltas, final = events
    assert deltas and all(isinstance(d, str) for d in deltas)
    assert "".join(deltas) == final.text


@pytest.mark.parametrize(
    "bad,needle",
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("x" * 5000, "limit"),
        ("\x00\x01\x02\x03" * 50, "control"),
        ("?!?", "words"),
    ],
)
def test_bad_questions_get_a_clear_message(built_advisor, bad, needle):
    with pytest.raises(InvalidQuestionError, match=needle):
        built_advisor.ask(bad)


def test_clean_question_keeps_normal_text():
    assert clean_question("  How  do I\nscale?  ", 100) == "How do I scale?"


def test_warm_up_loads_what_the_first_question_would_wait_for(built_advisor, built_settings):
    from advisor.advisor import build_advisor

    fresh = build_advisor(built_settings, embedder=built_advisor.embedder)
    matcher = fresh.guidance.matcher
    assert matcher is not None and matcher._ready is False
    sentinel = object()
    fresh.llm_answerer = sentinel  # never called: the warm-up answers offline
    assert fresh.warm_up() > 0
    assert matcher._ready is True and fresh.llm_answerer is sentinel
