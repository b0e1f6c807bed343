"""Filtering the map by audience, stage and theme, and the JSON shape of a theme."""

from __future__ import annotations

import pytest

from advisor.guidance import GuidanceError


def test_filter_by_audience_keeps_only_that_audiences_points(guidance_map):
    themes = guidance_map.filtered(audience="commissioners")
    assert themes
    assert all("commissioners" in p.audiences for t in themes for p in t.points)
    every = sum(len(t.points) for t in guidance_map.themes)
    assert sum(len(t.points) for t in themes) < every
    assert {t.id for t in themes} <= {t.id for t in guidance_map.themes if "commissioners" in t.audiences}


def test_filter_by_stage_and_audience_together(guidance_map):
    themes = guidance_map.filtered(audience="adopters", stage="before-pilot")
    points = [p for t in themes for p in t.points]
    assert points
    assert all("adopters" in p.audiences and "before-pilot" in p.stages for p in points)


def test_a_theme_is_found_by_id_or_title_in_any_case(guidance_map):
    pilot = guidance_map.theme("running-a-good-pilot")
    assert pilot is not None
    assert guidance_map.theme(pilot.title.upper()) is pilot
    assert [t.id for t in guidance_map.filtered(theme="  Running-A-Good-Pilot ")] == ["running-a-good-pilot"]
    assert guidance_map.theme("pilots") is None


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"audience": "patients"}, "unknown audience 'patients'; choose one of: innovators, adopters"),
        ({"stage": "later"}, "unknown stage 'later'; choose one of: before-pilot, pilot-to-early-adoption"),
        ({"theme": "nope"}, "unknown theme 'nope'; the themes are: start-from-the-problem, "),
    ],
)
def test_an_unknown_filter_value_names_the_valid_ones(guidance_map, kwargs, named):
    with pytest.raises(GuidanceError) as info:
        guidance_map.filtered(**kwargs)
    assert named in str(info.value)


def test_theme_json_shape(guidance_map):
    record = guidance_map.theme("commissioning-for-spread").to_json()
    assert list(record) == ["theme", "title", "statement", "audiences", "stages", "points", "cases"]
    assert record["theme"] == "commissioning-for-spread"
    assert list(record["points"][0]) == [
        "quote",
        "source",
        "section",
        "line",
        "point",
        "audiences",
        "stages",
        "cases",
    ]
    assert isinstance(record["points"][0]["line"], int)
