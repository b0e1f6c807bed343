"""Reading questions across cases by meaning: the question model, spans, conditions and queries."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from advisor.cases import CaseQuery
from advisor.cases.reading import (
    CLASSES,
    CONDITION_FEATURES,
    MODEL_FILE,
    Candidate,
    CaseQuestionModel,
    ConditionModel,
    candidate_spans,
    fit,
    load_model,
)
from tests.cases.helpers import CHAMPIONS, MENTAL_HEALTH, NATIONAL_PROGRAMME, TARIFF


def _stub(advisor_catalogue, kind: str) -> object:
    """The real reader with a question model that always says `kind` (its conditions are real)."""
    real = advisor_catalogue.reader.model
    dimension = real.coef.shape[1]
    intercept = np.array([8.0 if c == kind else 0.0 for c in CLASSES], dtype=np.float32)
    model = CaseQuestionModel(
        np.zeros((len(CLASSES), dimension), np.float32),
        intercept,
        np.zeros(dimension, np.float32),
        np.ones(dimension, np.float32),
        conditions=real.conditions,
    )
    return advisor_catalogue.reader.with_model(model)


# ---- without a model nothing is read ----------------------------------------------------
def test_without_an_embedder_or_model_no_question_is_read(catalogue):
    reading = catalogue.reading("Which innovations used a tariff to spread?")
    assert reading.query is None and "no question model" in reading.reason
    assert catalogue.read("Which innovations used a tariff to spread?") is None


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(classes=["other", "list"]), "coefficients do not match"),
        (lambda d: d["scale"].__setitem__(0, 0.0), "scale must be positive"),
        (lambda d: d.update(mean=d["mean"][:-1]), "standardisation does not match"),
    ],
)
def test_a_damaged_model_file_is_refused_and_logged(tmp_path, caplog, change, message):
    doc = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    change(doc)
    path = tmp_path / "case_questions.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert load_model(path) is None
    assert message in caplog.text and "advisor calibrate --what cases" in caplog.text


def test_a_missing_model_file_is_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert load_model(tmp_path / "absent.json") is None
    assert "not found" in caplog.text


# ---- spans and conditions ---------------------------------------------------------------
def test_spans_neither_start_nor_end_on_a_stop_word():
    spans = [s for s, _ in candidate_spans("Which of the cases were paid through a tariff")]
    assert "tariff" in spans and "cases" in spans and "paid" in spans
    assert all(s.split()[0].lower() not in {"which", "of", "the", "a", "were"} for s in spans)
    assert all(s.split()[-1].lower() not in {"which", "of", "the", "a", "through"} for s in spans)
    assert max(len(s.split()) for s in spans) <= 4


def _candidate(value: str, at: tuple[int, int], similarity: float) -> Candidate:
    features = dict.fromkeys(CONDITION_FEATURES, 0.0) | {"span_similarity": similarity}
    return Candidate("setting", value, value, at, value, features)


def test_the_likeliest_non_overlapping_values_above_the_threshold_are_the_conditions():
    coef = np.array([10.0 if f == "span_similarity" else 0.0 for f in CONDITION_FEATURES])
    n = len(CONDITION_FEATURES)
    model = ConditionModel(
        coef, -5.0, np.zeros(n), np.ones(n), threshold=0.5, max_conditions=2, word_share={}
    )
    candidates = [
        _candidate("primary care", (3, 5), 0.9),
        _candidate("community care", (4, 6), 0.8),  # overlaps the better span: left out
        _candidate("mental health", (7, 8), 0.7),
        _candidate("acute care", (9, 10), 0.6),  # third: over the limit of two
        _candidate("social care", (11, 12), 0.3),  # below the threshold
    ]
    chosen = model.choose(candidates)
    assert [c.value for c in chosen] == ["primary care", "mental health"]
    model.max_conditions = 5
    assert [c.value for c in model.choose(candidates)] == ["primary care", "mental health", "acute care"]


def test_fit_learns_separable_classes_and_reports_cross_validation():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(CLASSES), 16))
    labels = [c for c in CLASSES for _ in range(20)]
    vectors = np.stack([centres[CLASSES.index(c)] + 0.1 * rng.normal(size=16) for c in labels])
    doc, held_out = fit(vectors, labels)
    assert doc["cross_validated"]["accuracy"] == 1.0 and held_out.shape == (80, len(CLASSES))
    model = CaseQuestionModel.load_document(doc)
    for i, c in enumerate(CLASSES):
        p = model.probabilities(centres[i])
        assert max(p, key=p.get) == c


# ---- the reader's logic, with a question model that always says one thing ----------------
@pytest.mark.model
def test_a_question_asking_for_cases_lists_the_closest_value(advisor_catalogue):
    reader = _stub(advisor_catalogue, "list")
    query = reader.read("Which ones were paid for through a tariff?")
    assert query is not None and query.kind == "list"
    assert query.tags == {"mechanism": frozenset({"tariff or payment"})}
    assert {c.name for c in advisor_catalogue.matching(query)} == TARIFF


@pytest.mark.model
def test_how_many_asks_for_a_count(advisor_catalogue):
    query = _stub(advisor_catalogue, "list").read("How many of them were used in mental health services?")
    assert query.kind == "count" and {c.name for c in advisor_catalogue.matching(query)} == MENTAL_HEALTH


@pytest.mark.model
def test_two_named_cases_are_compared_and_one_is_left_to_the_passages(advisor_catalogue):
    reader = _stub(advisor_catalogue, "list")
    assert reader.read("IAPT and RAID: which of them spread further?") == CaseQuery(
        "compare", names=("IAPT", "RAID")
    )
    reading = reader.reading("Which of KardiaMobile's partners helped it most?")
    assert reading.query is None and reading.names == ("KardiaMobile",)


@pytest.mark.model
def test_cases_like_mine_carries_the_whole_description(advisor_catalogue):
    question = "We make a digital tool for primary care; who else has done this?"
    assert _stub(advisor_catalogue, "like").read(question) == CaseQuery("like", text=question)


@pytest.mark.model
def test_a_question_the_model_reads_as_other_is_not_read(advisor_catalogue):
    for kind in ("other", "advice"):
        reading = _stub(advisor_catalogue, kind).reading("Which ones were paid for through a tariff?")
        assert reading.query is None and reading.reason == "not a question across cases"


@pytest.mark.model
def test_the_asking_sentence_is_read_not_the_scene_setting(advisor_catalogue):
    # the scene names a setting (GP practice); the asking sentence names the mechanism
    reading = _stub(advisor_catalogue, "list").reading(
        "I am a GP partner in a busy practice. Which of the examples spread through national programmes?"
    )
    assert reading.query is not None and reading.query.tags == {
        "mechanism": frozenset({"national programme"})
    }


@pytest.mark.model
@pytest.mark.parametrize(
    "question", ["list all the case studies", "Which case studies do the reports cover?"]
)
def test_a_question_for_the_catalogue_itself_lists_every_case(advisor_catalogue, question):
    reading = _stub(advisor_catalogue, "list").reading(question)
    assert reading.reason == "asks for every case" and reading.query == CaseQuery("list")
    assert len(advisor_catalogue.matching(reading.query)) == 23


@pytest.mark.model
def test_case_studies_is_the_frame_of_the_question_not_a_condition(advisor_catalogue):
    reading = _stub(advisor_catalogue, "list").reading("Which case studies were spun out into a charity?")
    assert "case studies and testimony" not in {c.value for c in reading.conditions}
    assert all("studies" not in c.span for c in reading.conditions)


@pytest.mark.model
def test_an_asking_sentence_pointing_back_at_the_scene_reads_the_whole_question(advisor_catalogue):
    reading = _stub(advisor_catalogue, "list").reading(
        "We are setting ourselves up as a social enterprise. Did any of them go down that route?"
    )
    assert reading.query is not None and reading.query.tags == {
        "organisation_type": frozenset({"social enterprise"})
    }


# ---- the fitted model on wordings of our own (none is in an evaluation split) ------------
@pytest.mark.model
@pytest.mark.parametrize(
    "question, expected",
    [
        ("Name the cases where a clinical champion drove adoption.", CHAMPIONS),
        ("Which of the case studies were part of an NHS England programme?", NATIONAL_PROGRAMME),
        ("Which innovations were reimbursed through a payment incentive?", TARIFF),
        ("How many innovations are used in mental health services?", MENTAL_HEALTH),
    ],
)
def test_the_fitted_model_reads_questions_across_cases(advisor_catalogue, question, expected):
    query = advisor_catalogue.read(question)
    assert query is not None and query.kind in ("list", "count")
    assert {c.name for c in advisor_catalogue.matching(query)} == expected


@pytest.mark.model
@pytest.mark.parametrize(
    "question",
    [
        "How did KardiaMobile reach patients?",
        "What role do clinical champions play in spreading an innovation?",
        "How can a tariff help an innovation spread?",
        "Should I set up a spin-out to spread my innovation?",
        "What should a private company know about selling to the NHS?",
        "Which innovations failed to spread?",  # asks for cases by what the catalogue does not record
        # the model gives "list" 1.0; the grammar (a how question) keeps it off the catalogue
        "How did the Against the Odds innovators persuade late adopters?",
        "What funding helps innovations spread?",
    ],
)
def test_the_fitted_model_leaves_other_questions_to_the_passages(advisor_catalogue, question):
    assert advisor_catalogue.read(question) is None
