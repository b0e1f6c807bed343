"""The case-study catalogue: its quotes against the reports, validation, cross-case answers, "cases like mine"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from advisor.cases import (
    CATALOGUE_NAME,
    TAG_FIELDS,
    CaseCatalogue,
    CatalogueLoader,
    load_catalogue,
    normalise_space,
)
from advisor.chunking import locate_case_studies
from advisor.corpus import Manifest
from advisor.errors import CatalogueError
from advisor.types import Filters
from tests.conftest import CORPUS

ADVISOR = str(Path(sys.executable).with_name("advisor"))
NUFFIELD = "nuffield-2020-achieving-scale-and-spread.txt"
ODDS = "against-the-odds-2018-report.txt"


@pytest.fixture(scope="module")
def catalogue() -> CaseCatalogue:
    return CaseCatalogue.load(CORPUS)


@pytest.fixture(scope="module")
def advisor_catalogue(built_advisor) -> CaseCatalogue:
    catalogue = built_advisor.case_catalogue.current
    assert catalogue is not None, built_advisor.case_catalogue.error
    return catalogue


# ---- the catalogue against the reports ------------------------------------------------
def test_every_manifest_case_study_is_catalogued_once(catalogue):
    manifest = Manifest.load(CORPUS)
    expected = {(s.name, src) for src, e in manifest.entries.items() for s in e.case_studies}
    assert {(c.name, c.source) for c in catalogue.cases} == expected
    assert len(catalogue) == 23
    per_report = {}
    for c in catalogue.cases:
        per_report[c.source] = per_report.get(c.source, 0) + 1
    assert per_report == {
        NUFFIELD: 8,
        ODDS: 10,
        "nhs-confederation-2023-scaling-innovation.txt": 4,
        "hin-south-london-2025-technology-enabled-service-change.txt": 1,
    }


def test_every_quote_is_verbatim_inside_its_case_study(catalogue):
    """Checked here independently of the loader: raw lines of the case, white space normalised."""
    manifest = Manifest.load(CORPUS)
    checked = 0
    for case in catalogue.cases:
        raw = (CORPUS / case.source).read_text(encoding="utf-8").split("\n")
        bounds = {s.name: (a, b) for s, a, b in locate_case_studies(raw, manifest.case_studies_for(case.source))}
        first, end = bounds[case.name]
        own = normalise_space(" ".join(raw[first:end]).replace("[engagement events](#)", "engagement events"))
        for e in case.evidence:
            assert e.quote in own, f"{case.name} / {e.field}: {e.quote!r}"
            assert first + 1 <= e.line <= end, f"{case.name} / {e.field}: line {e.line}"
            assert normalise_space(e.quote).split()[0] in raw[e.line - 1] or "[" in raw[e.line - 1]
            checked += 1
    assert checked == sum(len(c.evidence) for c in catalogue.cases) >= 400


def test_every_quote_is_in_an_indexed_chunk_of_its_case_study(built_advisor, advisor_catalogue):
    from advisor.cases import anchor_quotes

    anchors = anchor_quotes(advisor_catalogue.cases, built_advisor._snapshot.chunks)
    missing = [
        (c.name, e.field, e.quote)
        for c in advisor_catalogue.cases
        for e in c.evidence
        if (c.name, e.quote) not in anchors or anchors[(c.name, e.quote)].case_study != c.name
    ]
    assert missing == []


def test_vocabularies_are_respected_and_every_case_is_described(catalogue):
    vocab = catalogue.vocabulary
    for case in catalogue.cases:
        assert case.description, case.name
        assert case.values("innovation_type"), f"{case.name} has no innovation type"
        for field in TAG_FIELDS:
            for value in case.values(field):
                assert (field, value) in vocab, f"{case.name}: {field}={value}"
        for e in case.evidence:
            if e.field == "scale" and e.year is not None:
                assert str(e.year) in e.quote, f"{case.name}: scale year {e.year} not in its quote"
    for field in TAG_FIELDS:
        for value in vocab.values(field):
            assert vocab.terms[field][value].description, f"{field}={value} has no description"


def test_filter_by_tags(catalogue):
    names = {c.name for c in catalogue.filter(innovation_type="digital tool", setting="primary care")}
    assert names == {
        "KardiaMobile", "Lantum", "my mhealth (myCOPD)", "Florence (Flo)", "Ambient Voice Technology in London"
    }
    assert {c.name for c in catalogue.filter(mechanism="spin-out organisation")} == {
        "Schwartz Rounds (Point of Care Foundation)", "Florence (Flo)", "Schwartz Rounds (UK)"
    }
    assert all(c.source == ODDS for c in catalogue.filter(source=ODDS))
    with pytest.raises(CatalogueError, match="unknown setting 'hospital'"):
        catalogue.filter(setting="hospital")


# ---- a broken catalogue ---------------------------------------------------------------
def _mutate(corpus: Path, change) -> None:
    path = corpus / CATALOGUE_NAME
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data["cases"])
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _case(cases, name):
    return next(c for c in cases if c["name"] == name)


def _evidence(case, field):
    return next(e for e in case["evidence"] if e["field"] == field)


BROKEN = {
    "unknown tag": (
        lambda cs: _evidence(_case(cs, "Lantum"), "setting").update(value="hospital"),
        ["'Lantum'", "field 'setting'", "unknown tag 'hospital'"],
    ),
    "quote not in the corpus": (
        lambda cs: _evidence(_case(cs, "RAID"), "scale").update(quote="RAID has now been implemented in 250 organisations"),
        ["'RAID'", "field 'scale'", "quote not found"],
    ),
    "quote from another case study": (
        lambda cs: _evidence(_case(cs, "Lantum"), "mechanism").update(
            quote=_evidence(_case(cs, "KardiaMobile"), "mechanism")["quote"], line=None
        ),
        ["'Lantum'", "field 'mechanism'", "quote not found", "within the case study"],
    ),
    "wrong line": (
        lambda cs: _evidence(_case(cs, "DAFNE"), "description").update(line=1),
        ["'DAFNE'", "field 'description'", "'line' is 1"],
    ),
    "unknown field": (
        lambda cs: _case(cs, "IAPT")["evidence"].append({"field": "colour", "value": "blue", "quote": "a b c"}),
        ["'IAPT'", "field 'colour'", "unknown field"],
    ),
    "missing source": (
        lambda cs: _case(cs, "ERAS").pop("source"),
        ["'ERAS'", "'source' is missing"],
    ),
    "case not in the manifest": (
        lambda cs: _case(cs, "ERAS+").update(name="ERAS++"),
        ["'ERAS++'", "field 'name'", "no case study 'ERAS++'"],
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_catalogue_is_refused_naming_entry_and_field(corpus_copy, kind):
    change, expected = BROKEN[kind]
    _mutate(corpus_copy, change)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(corpus_copy)
    for part in expected:
        assert part in str(info.value), str(info.value)


def test_invalid_yaml_is_refused(corpus_copy):
    (corpus_copy / CATALOGUE_NAME).write_text("cases: [unclosed\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(corpus_copy)


def test_the_previous_catalogue_keeps_serving_after_a_broken_reload(corpus_copy, caplog):
    loader = CatalogueLoader(corpus_copy)
    first = loader.reload()
    assert first is not None and len(first) == 23
    _mutate(corpus_copy, BROKEN["unknown tag"][0])
    assert loader.reload() is first
    assert "unknown tag 'hospital'" in loader.error
    assert "previous catalogue keeps serving" in caplog.text


# ---- questions across cases --------------------------------------------------------------
def _rows(answer):
    """(case name, sentence) for every cited row of a catalogue answer."""
    by_marker = {c.marker: c for c in answer.citations}
    rows = []
    for s in answer.sentences[1:]:
        cases = {by_marker[m].passage.chunk.case_study for m in s.markers}
        assert len(cases) == 1, s
        rows.append((cases.pop(), s))
    return rows


def _assert_cited(answer):
    assert answer.route in ("catalogue", "cases_like_mine") and not answer.refused
    assert answer.sentences and all(s.markers and s.verdict == "supported" for s in answer.sentences)
    for c in answer.citations:
        assert c.quote in normalise_space(c.passage.chunk.text)
    markers = {m for s in answer.sentences for m in s.markers}
    assert markers == {c.marker for c in answer.citations}
    for m in markers:
        assert f"[{m}]" in answer.text


def test_tariff_question_is_answered_from_the_catalogue(built_advisor):
    answer = built_advisor.ask("Which innovations used a national tariff or payment to spread?")
    _assert_cited(answer)
    rows = _rows(answer)
    assert {name for name, _ in rows} == {
        "KardiaMobile", "my mhealth (myCOPD)", "DAFNE", "ERAS",
        "Implantable Cardioverter-Defibrillators (ICDs)", "Schwartz Rounds (UK)",
    }
    assert len(rows) == 6  # one cited row per matching case
    record = answer.to_record()
    assert record["route"] == "catalogue" and len(record["citations"]) == 6
    assert [r["case"] for r in record["rows"]] == [r.case for r in answer.rows]


def test_champions_question_lists_one_row_per_case(built_advisor, advisor_catalogue):
    answer = built_advisor.ask("Which ones spread through clinical champions?")
    _assert_cited(answer)
    expected = {c.name for c in advisor_catalogue.filter(mechanism="clinical champions")}
    rows = _rows(answer)
    assert [n for n, _ in rows] == [c.name for c in advisor_catalogue.cases if c.name in expected]
    assert len(expected) >= 10
    for name, sentence in rows:
        assert "clinical champions" in sentence.text


def test_how_many_question_counts(built_advisor):
    answer = built_advisor.ask("How many case studies are digital tools?")
    _assert_cited(answer)
    assert answer.text.startswith("8 of the 23 case studies in the catalogue match innovation type digital tool")
    assert len(_rows(answer)) == 8


def test_compare_named_cases(built_advisor):
    answer = built_advisor.ask("Compare IAPT and RAID")
    _assert_cited(answer)
    assert {name for name, _ in _rows(answer)} == {"IAPT", "RAID"}


def test_filters_restrict_the_cases(built_advisor):
    answer = built_advisor.ask(
        "Which innovations used a national tariff or payment to spread?", filters=Filters(sources=(NUFFIELD,))
    )
    _assert_cited(answer)
    assert {name for name, _ in _rows(answer)} == {"KardiaMobile", "my mhealth (myCOPD)"}


@pytest.mark.parametrize(
    "question",
    [
        "How did KardiaMobile reach patients?",
        "What are the three core pillars for adopting a proven innovation?",
        "Which innovations failed to spread?",  # a criterion the catalogue does not record
        "Which digital tools struggled with interoperability?",
        "What barriers did innovators face?",
        # advice questions that mention a vocabulary value without asking for cases
        "What role do clinical champions play in spreading an innovation?",
        "How do I find a clinical champion for my innovation?",
        "How many clinical champions does an innovation need?",
        "Why do national programmes matter for spread?",
        "How can a tariff help an innovation spread?",
        "Is a randomised controlled trial necessary before spreading a digital tool?",
        "Should I set up a spin-out to spread my innovation?",
        "What should a private company know about selling to the NHS?",
        "What do GP practices look for in a digital tool?",
        "How does NICE guidance affect adoption?",
        "What happens when funding ends for an innovation?",
        "What national programmes are there?",  # asks about programmes, not cases
        # "innovations" as the object of an advice question, not what is asked for
        "What funding helps innovations spread?",
        "What grant funding helps innovations spread?",
        "What evidence convinces adopters of innovations?",
        # asking for cases, but by something the catalogue does not record
        "Which innovations reduced hospital admissions?",
        "Which digital tools improved patient outcomes in primary care?",
        "What innovations should I consider for primary care?",
        "Which innovations helped patients?",
    ],
)
def test_other_questions_are_left_to_the_passages(advisor_catalogue, question):
    assert advisor_catalogue.read(question) is None


def test_an_advice_question_about_champions_is_answered_from_the_passages(built_advisor):
    answer = built_advisor.ask("What role do clinical champions play in spreading an innovation?")
    assert answer.route == "passages" and answer.passages


CHAMPIONS = {
    "KardiaMobile", "Patients Know Best", "Next Generation Electronic Patient Record (Nervecentre)",
    "OBH Outcomes Platform", "Lantum", "my mhealth (myCOPD)", "Altogether Better", "DAFNE", "ERAS",
    "Florence (Flo)", "Implantable Cardioverter-Defibrillators (ICDs)", "RAID",
}
NATIONAL_PROGRAMME = {
    "KardiaMobile", "ERAS+", "Next Generation Electronic Patient Record (Nervecentre)", "OBH Outcomes Platform",
    "my mhealth (myCOPD)", "DAFNE", "ERAS", "Florence (Flo)", "IAPT", "RAID",
}
TARIFF = {
    "KardiaMobile", "my mhealth (myCOPD)", "DAFNE", "ERAS", "Implantable Cardioverter-Defibrillators (ICDs)",
    "Schwartz Rounds (UK)",
}
TRIALS = {"KardiaMobile", "my mhealth (myCOPD)", "DAFNE", "ERAS", "Implantable Cardioverter-Defibrillators (ICDs)"}
SPIN_OUT = {"Schwartz Rounds (Point of Care Foundation)", "Florence (Flo)", "Schwartz Rounds (UK)"}
COMPANIES = {
    "KardiaMobile", "Patients Know Best", "Next Generation Electronic Patient Record (Nervecentre)",
    "OBH Outcomes Platform", "Lantum", "my mhealth (myCOPD)", "High-sensitivity troponin testing",
    "Implantable Cardioverter-Defibrillators (ICDs)",
}
DIGITAL_IN_PRIMARY_CARE = {
    "KardiaMobile", "Lantum", "my mhealth (myCOPD)", "Florence (Flo)", "Ambient Voice Technology in London"
}
NICE = {
    "KardiaMobile", "DAFNE", "High-sensitivity troponin testing", "Implantable Cardioverter-Defibrillators (ICDs)",
    "IAPT",
}
FUNDING_ENDED = {"Altogether Better", "ERAS+", "ERAS", "Florence (Flo)", "Macmillan Cancer Nurse Specialists"}
AHSN_SUPPORT = {
    "KardiaMobile", "my mhealth (myCOPD)", "RAID", "FeNO testing", "Ambient Voice Technology in London"
}
MENTAL_HEALTH = {
    "IAPT", "RAID", "Altogether Better", "Florence (Flo)", "Schwartz Rounds (UK)",
    "Ambient Voice Technology in London",
}


@pytest.mark.parametrize(
    "question, kind, expected",
    [
        ("Name the cases where a clinical champion drove adoption.", "list", CHAMPIONS),
        ("Which innovations used champions to persuade their peers?", "list", CHAMPIONS),
        ("Which of the case studies were part of an NHS England programme?", "list", NATIONAL_PROGRAMME),
        # the examples after "for example" are examples of the criterion, not criteria of their own
        # (else "NHS England" would also ask for a national body as the organisation)
        (
            "Which innovations were boosted by a national initiative, for example the NHS Innovation "
            "Accelerator or NHS England's Test Beds?",
            "list",
            NATIONAL_PROGRAMME,
        ),
        ("Are there any cases that were paid for through the Quality and Outcomes Framework?", "list", TARIFF),
        ("Which innovations were reimbursed through a payment incentive?", "list", TARIFF),
        ("Give me examples of innovations backed by randomised trials.", "list", TRIALS),
        ("Which cases had trial evidence behind them?", "list", TRIALS),
        ("Which innovations were spun off into an independent organisation?", "list", SPIN_OUT),
        ("How many of the case studies came from start-ups or SMEs?", "count", COMPANIES),
        ("Which innovations were made by a commercial company?", "list", COMPANIES),
        ("What digital tools are used in GP surgeries?", "list", DIGITAL_IN_PRIMARY_CARE),
        ("How many apps have been adopted by general practices?", "count", DIGITAL_IN_PRIMARY_CARE),
        ("Which innovations were recommended by NICE?", "list", NICE),
        ("Which innovations struggled once their funding ended?", "list", FUNDING_ENDED),
        ("Which case studies were supported by AHSNs?", "list", AHSN_SUPPORT),
        # "developed by" names the organisation, not the support it had
        ("Which innovations were developed by an AHSN?", "list", {"FeNO testing", "Ambient Voice Technology in London"}),
        # "services" is the head noun of "mental health services", not the innovation type "service model"
        ("How many innovations are used in mental health services?", "count", MENTAL_HEALTH),
    ],
)
def test_paraphrased_questions_across_cases_are_read(advisor_catalogue, question, kind, expected):
    query = advisor_catalogue.read(question)
    assert query is not None and query.kind == kind, query
    assert {c.name for c in advisor_catalogue.matching(query)} == expected, query.tags


@pytest.mark.parametrize(
    "question, expected",
    [
        ("Which innovations used champions to persuade their peers?", CHAMPIONS),
        ("How many innovations are used in mental health services?", MENTAL_HEALTH),
        ("Which cases had trial evidence behind them?", TRIALS),
    ],
)
def test_paraphrased_questions_are_answered_with_one_cited_row_per_case(built_advisor, question, expected):
    answer = built_advisor.ask(question)
    _assert_cited(answer)
    assert {name for name, _ in _rows(answer)} == expected and len(_rows(answer)) == len(expected)


def test_a_generic_head_noun_is_not_a_criterion(catalogue):
    vocab = catalogue.vocabulary
    assert vocab.parse("used in mental health services") == {"setting": frozenset({"mental health"})}
    assert vocab.parse("randomised controlled trial evidence") == {"evidence_type": frozenset({"clinical trial"})}
    # standing alone, the same words still name their value
    assert vocab.parse("which services") == {"innovation_type": frozenset({"service model"})}
    assert vocab.parse("backed by evidence") == {"mechanism": frozenset({"evidence"})}
    # a phrase also reads in the plural
    assert vocab.parse("private companies in GP surgeries") == {
        "organisation_type": frozenset({"private company"}), "setting": frozenset({"primary care"})
    }


def test_stream_yields_the_table_then_the_answer(built_advisor):
    events = list(built_advisor.stream("How many case studies are digital tools?"))
    assert isinstance(events[0], str) and events[0].startswith("8 of the 23")
    assert events[-1].route == "catalogue" and events[-1].timings_ms["total"] >= 0


# ---- cases like mine -------------------------------------------------------------------
@pytest.mark.parametrize(
    "description, top, among",
    [
        ("a digital tool for primary care, a small company", None, {"my mhealth (myCOPD)", "Lantum", "KardiaMobile"}),
        ("a mental health liaison team in an acute hospital", "RAID", set()),
        ("a specialist nurse role for people with cancer, funded by a charity", "Macmillan Cancer Nurse Specialists", set()),
        ("an education course that helps people with diabetes manage their condition", "DAFNE", set()),
    ],
)
def test_cases_like_mine_ranking(advisor_catalogue, description, top, among):
    matches = advisor_catalogue.like(description, k=5)
    assert matches, description
    names = [m.case.name for m in matches]
    if top:
        assert names[0] == top, names
    if among:
        assert set(names[:3]) == among, names
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    best = matches[0]
    assert best.reasons and best.citations
    for e in best.citations:
        assert e.quote in normalise_space((CORPUS / best.case.source).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "description",
    [
        "a recipe for chocolate cake with strawberries",
        "my cat likes sleeping on the sofa all afternoon",
        "zxqv blorp",
    ],
)
def test_nothing_in_common_says_so(built_advisor, advisor_catalogue, description):
    assert advisor_catalogue.like(description) == []
    answer = built_advisor.ask(f"Show me cases like mine: {description}")
    assert answer.refused and answer.route == "cases_like_mine"
    assert "None of the case studies" in answer.text and not answer.citations


@pytest.mark.parametrize(
    "description, expected",
    [
        ("a specialist nurse role for people with cancer, funded by a charity", ["Macmillan Cancer Nurse Specialists"]),
        ("a mental health liaison team in an acute hospital", ["RAID"]),
        ("a digital tool for primary care, a small company", ["my mhealth (myCOPD)", "Lantum", "KardiaMobile"]),
    ],
)
def test_cases_like_mine_stops_where_similarity_falls_off(advisor_catalogue, description, expected):
    from advisor.cases import LIKE_MARGIN

    matches = advisor_catalogue.like(description, k=5)
    assert [m.case.name for m in matches] == expected
    assert all(m.score >= matches[0].score - LIKE_MARGIN for m in matches)
    everything = advisor_catalogue.like(description, k=5, margin=None)  # without the cut, five would be shown
    assert len(everything) == 5 and everything[: len(matches)] == matches
    assert everything[len(matches)].score < matches[0].score - LIKE_MARGIN


def test_cases_like_mine_keeps_cases_that_tie(advisor_catalogue):
    matches = advisor_catalogue.like("", k=5, tags={"innovation_type": ["digital tool"], "setting": ["primary care"]})
    assert {m.case.name for m in matches} == DIGITAL_IN_PRIMARY_CARE and {m.score for m in matches} == {1.0}


def test_one_similar_case_is_answered_as_one(built_advisor):
    answer = built_advisor.ask("Cases like mine: a structured education course for adults with type 1 diabetes")
    _assert_cited(answer)
    assert answer.text.startswith("The 1 case study most like yours")
    assert {name for name, _ in _rows(answer)} == {"DAFNE"}


def test_cases_like_mine_through_the_advisor(built_advisor):
    answer = built_advisor.ask("Show me cases like mine: a digital tool for primary care, a small company")
    _assert_cited(answer)
    assert "most like yours" in answer.text
    assert "How " in answer.text and "spread:" in answer.text


# ---- the command line --------------------------------------------------------------------
def _run(args, corpus=CORPUS, timeout=300):
    env = {**os.environ, "ADVISOR_CORPUS_DIR": str(corpus)}
    return subprocess.run([ADVISOR, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_cli_cases_json():
    out = _run(["cases", "--json"])
    assert out.returncode == 0, out.stderr
    cases = json.loads(out.stdout)
    assert len(cases) == 23
    for case in cases:
        assert {"name", "source", "section", "evidence"} <= set(case)
        assert (CORPUS / case["source"]).is_file()
        assert all({"field", "value", "quote"} <= set(e) for e in case["evidence"])
    kardia = next(c for c in cases if c["name"] == "KardiaMobile")
    assert {"field": "setting", "value": "primary care"}.items() <= next(
        e for e in kardia["evidence"] if e["field"] == "setting" and e["value"] == "primary care"
    ).items()


def test_cli_cases_like_json():
    out = _run(["cases", "--like", "a mental health liaison team in an acute hospital", "--json", "-k", "3"])
    assert out.returncode == 0, out.stderr
    matches = json.loads(out.stdout)
    assert matches[0]["name"] == "RAID" and len(matches) <= 3
    assert {"name", "score", "reasons", "citations", "source", "section"} <= set(matches[0])
    assert all({"field", "value", "quote"} <= set(c) for c in matches[0]["citations"])


def test_cli_broken_catalogue_exits_2_naming_the_entry(corpus_copy):
    _mutate(corpus_copy, BROKEN["unknown tag"][0])
    out = _run(["cases"], corpus=corpus_copy)
    assert out.returncode == 2
    assert "'Lantum'" in out.stderr and "unknown tag 'hospital'" in out.stderr and "Traceback" not in out.stderr
