"""Matching questions to the guidance map, the route decision and the cited guidance answer."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from advisor.guidance.answer import compose
from advisor.guidance.matching import (
    FEATURES,
    MODEL_FILE,
    RouteModel,
    _clear_best,
    fit_route,
    load_route_model,
)
from advisor.text import normalise_space
from advisor.types import Filters

FUNDING_ENDS = (
    "Our grant finishes next spring and I have no idea who keeps paying for the service after that."
)


def assert_every_row_cited(answer):
    """Each row's quote is in the passage its marker cites; the heading rests on all of them."""
    passages = {p.chunk.id: normalise_space(p.chunk.text) for p in answer.passages}
    assert answer.route == "guidance" and not answer.refused and answer.rows
    for sentence in answer.sentences:
        assert sentence.markers, sentence.text
        for marker in sentence.markers:
            citation = answer.citation(marker)
            assert normalise_space(citation.quote) in passages[citation.passage.chunk.id]
    assert answer.sentences[0].markers == tuple(c.marker for c in answer.citations)


# ---- the route model file ---------------------------------------------------------------
def test_the_committed_route_model_loads_with_a_threshold_chosen_on_dev():
    model = RouteModel.load(MODEL_FILE)
    assert model.meta["fitted_on"] == "eval_sets/dev.jsonl" and 0 < model.threshold < 1
    close = {"best_point": 0.6, "second_point": 0.55, "best_theme": 0.65, "theme_margin": 0.1}
    assert model.routes(close | {"advice_probability": 1.0}) is True
    assert model.routes(close | {"advice_probability": 0.0}) is False


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(features=["best_point"]), "features"),
        (lambda d: d["scale"].__setitem__(0, 0.0), "do not match"),
    ],
)
def test_a_damaged_route_model_is_refused_and_logged(tmp_path, caplog, change, message):
    doc = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    change(doc)
    path = tmp_path / "route.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert load_route_model(path) is None
    assert message in caplog.text and "advisor calibrate --what guidance" in caplog.text


def test_fit_route_weighs_the_features_it_is_given():
    rows = [dict.fromkeys(FEATURES, 0.0) | {"advice_probability": p} for p in np.linspace(0, 1, 40)]
    labels = [int(r["advice_probability"] > 0.5) for r in rows]
    doc = fit_route(rows, labels) | {"threshold": 0.5}
    model = RouteModel.load_document(doc)
    assert model.coef[FEATURES.index("advice_probability")] > 0
    assert model.routes(rows[-1]) and not model.routes(rows[0])


def test_a_side_is_named_only_when_clearly_closest():
    assert _clear_best(("a", "b", "c"), np.array([0.50, 0.40, 0.10])) == "a"
    assert _clear_best(("a", "b", "c"), np.array([0.50, 0.48, 0.10])) is None


# ---- matching and answers on the real map -----------------------------------------------
@pytest.mark.model
def test_a_question_in_everyday_words_matches_its_theme(built_advisor):
    vector = built_advisor.embedder.encode([FUNDING_ENDS])[0]
    match = built_advisor.guidance.match(vector, 1.0)
    assert match.themes[0][0].id == "sustaining-after-start-up-funding"
    assert match.features["advice_probability"] == 1.0 and set(match.features) == set(FEATURES)


@pytest.mark.model
def test_who_is_asking_is_read_and_their_points_are_preferred(built_advisor):
    question = "I founded a small company with an app and want NHS trusts to buy it. What should I do first?"
    match = built_advisor.guidance.match(built_advisor.embedder.encode([question])[0], 1.0)
    assert match.audience == "innovators"


@pytest.mark.model
def test_the_answer_is_the_themes_closest_points_each_cited(built_advisor):
    answer = built_advisor.guidance.answer(
        FUNDING_ENDS,
        built_advisor.embedder.encode([FUNDING_ENDS])[0],
        built_advisor.index,
        None,
        1.0,
        force=True,
    )
    assert_every_row_cited(answer)
    theme = built_advisor.guidance.guidance.current.theme("sustaining-after-start-up-funding")
    assert answer.heading == f"What the reports advise ({theme.title}): {theme.statement}"
    quotes = {p.quote for p in theme.points}
    assert all(c.quote in quotes for c in answer.citations)
    assert 1 <= len(answer.rows) <= built_advisor.guidance.max_points + 1
    assert answer.analysis["guidance"]["theme"] == "sustaining-after-start-up-funding"


@pytest.mark.model
def test_a_report_filter_keeps_only_its_points_and_a_case_filter_leaves_the_map(built_advisor):
    vector = built_advisor.embedder.encode([FUNDING_ENDS])[0]
    theme = built_advisor.guidance.guidance.current.theme("sustaining-after-start-up-funding")
    source = theme.points[0].source
    answer = built_advisor.guidance.answer(
        FUNDING_ENDS, vector, built_advisor.index, Filters(sources=(source,)), 1.0, force=True
    )
    assert {c.passage.chunk.source for c in answer.citations} == {source}
    assert (
        built_advisor.guidance.answer(
            FUNDING_ENDS, vector, built_advisor.index, Filters(case_studies=("RAID",)), 1.0, force=True
        )
        is None
    )


@pytest.mark.model
def test_a_point_no_indexed_chunk_holds_is_never_shown(built_advisor):
    vector = built_advisor.embedder.encode([FUNDING_ENDS])[0]
    routed = built_advisor.guidance.decide(vector, 1.0)
    anchors = dict(built_advisor.guidance.anchors(built_advisor.index))
    best = next(s.point for s in routed.match.points if s.theme is routed.match.themes[0][0])
    del anchors[(best.source, best.quote)]
    answer = compose(FUNDING_ENDS, routed, anchors)
    assert best.quote not in {c.quote for c in answer.citations}
    assert compose(FUNDING_ENDS, routed, {}) is None


@pytest.mark.model
def test_the_advisor_routes_a_clear_advice_question_to_the_map(built_advisor):
    answer = built_advisor.ask(
        "How do I convince a finance director to keep paying for our app when the pilot money runs out?"
    )
    assert_every_row_cited(answer)
    record = answer.to_record()
    assert record["route"] == "guidance" and record["analysis"]["guidance"]["routed"] is True


@pytest.mark.model
def test_questions_of_other_kinds_stay_off_the_map(built_advisor):
    for question in (
        "What is the population of North West London in the Patients Know Best case?",
        "What is the capital of France?",
    ):
        assert built_advisor.ask(question).route == "passages", question


@pytest.mark.model
def test_guide_answers_on_a_named_theme_whatever_the_route(built_advisor):
    answer = built_advisor.guide("clinical-champions-and-advocates")
    assert_every_row_cited(answer)
    assert answer.analysis["guidance"]["theme"] == "clinical-champions-and-advocates"


def test_an_advisor_without_a_map_serves_no_guidance_answer():
    from advisor.guidance.answer import GuidanceAnswerer

    holder = SimpleNamespace(current=None, reload=lambda: None)
    answerer = GuidanceAnswerer(holder, embedder=None, route_model=None)
    assert answerer.match(np.zeros(3)) is None and answerer.decide(np.zeros(3)) is None
    assert answerer.answer("q", np.zeros(3), SimpleNamespace(generation="g", chunks=[])) is None
