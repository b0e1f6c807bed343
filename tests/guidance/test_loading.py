"""The real guidance map, and what loading says about a broken one (theme and point named)."""

from __future__ import annotations

import pytest

from advisor.guidance import AUDIENCES, GUIDANCE_NAME, STAGES, GuidanceError, load_guidance
from advisor.guidance.outline import ReportOutline, split_path
from advisor.text import normalise_space
from tests.conftest import CORPUS
from tests.guidance.helpers import NUFFIELD, ODDS, mutate, point_at, theme_entry


def test_the_real_map_has_25_to_40_themes_each_with_points(guidance_map):
    assert 25 <= len(guidance_map.themes) <= 40
    ids = [t.id for t in guidance_map.themes]
    assert len(ids) == len(set(ids))
    for theme in guidance_map.themes:
        assert theme.points, theme.id
        assert theme.title and theme.statement and theme.synonyms, theme.id
        assert set(theme.audiences) <= set(AUDIENCES) and set(theme.stages) <= set(STAGES)
        for p in theme.points:
            assert set(p.audiences) <= set(theme.audiences), (theme.id, p.line)
            assert set(p.stages) <= set(theme.stages), (theme.id, p.line)
            assert set(p.cases) <= set(theme.cases), (theme.id, p.line)


def test_every_quote_is_verbatim_on_its_line_under_its_section(guidance_map):
    """Checked apart from the loader: the report's own lines from `line` on hold the quote, and
    the section's last heading stands above it with no other heading of the map in between."""
    outlines = {}
    for p in guidance_map.points:
        outline = outlines.setdefault(p.source, ReportOutline.read(CORPUS / p.source))
        # the quote starts on its own line: the line's text opens the quote, or the quote opens
        # mid-line and the line's end is inside the quote
        lines = [normalise_space(ln.replace("\u00a0", " ")) for ln in outline.raw_lines[p.line - 1 :]]
        nearby = normalise_space(" ".join(lines[: len(p.quote) // 20 + 8]))
        assert normalise_space(p.quote) in nearby, (p.source, p.line)
        assert nearby.find(normalise_space(p.quote)) < len(lines[0]), (p.source, p.line)
        headings = outline.headings(p.section, p.line)
        assert headings is not None and len(headings) == len(split_path(p.section)), (p.source, p.section)
        assert headings[-1] <= p.line


def test_every_point_names_catalogue_cases(guidance_map, case_names):
    named = {c for t in guidance_map.themes for c in (*t.cases, *(c for p in t.points for c in p.cases))}
    assert named <= set(case_names)
    assert len(named) >= 15  # the themes are illustrated across most of the catalogue


@pytest.fixture
def real_names(case_names):
    return case_names


def _load(corpus, names):
    return load_guidance(corpus / GUIDANCE_NAME, corpus, names)


def test_a_quote_not_in_its_section_is_named(corpus_copy, real_names):
    def change(themes):
        theme, point = point_at(themes, NUFFIELD, 359)  # a quote from "Summary > Policy implications"
        point["section"] = "Summary > What this report adds"
        change.theme = theme["id"]

    mutate(corpus_copy, change)
    with pytest.raises(GuidanceError) as info:
        _load(corpus_copy, real_names)
    message = str(info.value)
    assert f"({change.theme!r})" in message
    assert f"({NUFFIELD} line 359)" in message
    assert "quote not found in section 'Summary > What this report adds'" in message


def test_a_heading_not_above_the_quote_is_named(corpus_copy, real_names):
    mutate(corpus_copy, lambda ts: point_at(ts, ODDS, 2016)[1].update(section="Glossary of terms"))
    with pytest.raises(GuidanceError) as info:
        _load(corpus_copy, real_names)
    assert f"({ODDS} line 2016): 'section': heading 'Glossary of terms'" in str(info.value)


def test_a_wrong_line_is_named_with_the_right_one(corpus_copy, real_names):
    mutate(corpus_copy, lambda ts: point_at(ts, NUFFIELD, 359)[1].update(line=360))
    with pytest.raises(GuidanceError) as info:
        _load(corpus_copy, real_names)
    assert "'line' is 360 but the quote starts on line 359" in str(info.value)


def test_an_unknown_case_is_named_with_the_catalogues_spelling(corpus_copy, real_names):
    def change(themes):
        theme = theme_entry(themes, "start-from-the-problem")
        theme["cases"].append("Flo")
        theme["points"][0]["cases"] = ["Flo"]
        theme["cases"].append("Shwartz Rounds (UK)")

    mutate(corpus_copy, change)
    with pytest.raises(GuidanceError) as info:
        _load(corpus_copy, real_names)
    message = str(info.value)
    assert (
        "theme 1 ('start-from-the-problem'): unknown case 'Flo'; the catalogue calls it 'Florence (Flo)'"
        in message
    )
    assert "point 1 (" in message and "unknown case 'Flo'" in message.split("point 1 (")[1]
    assert "unknown case 'Shwartz Rounds (UK)'; did you mean 'Schwartz Rounds (UK)'?" in message


def test_an_alias_of_two_cases_asks_for_one_of_them(corpus_copy, real_names):
    mutate(
        corpus_copy, lambda ts: theme_entry(ts, "start-from-the-problem")["cases"].append("Schwartz Rounds")
    )
    with pytest.raises(GuidanceError) as info:
        _load(corpus_copy, real_names)
    assert (
        "unknown case 'Schwartz Rounds'; it may mean any of 'Schwartz Rounds (Point of Care Foundation)', "
        "'Schwartz Rounds (UK)'" in str(info.value)
    )


def test_an_unknown_audience_or_stage_is_named_with_the_allowed_values(corpus_copy, real_names):
    def change(themes):
        themes[2]["points"][1]["audiences"] = ["patients"]
        themes[3]["stages"].append("piloting")

    mutate(corpus_copy, change)
    with pytest.raises(GuidanceError) as info:
        _load(corpus_copy, real_names)
    lines = str(info.value).splitlines()
    assert len(lines) == 2  # every problem, one a line
    assert "theme 3 (" in lines[0] and ", point 2 (" in lines[0]
    assert (
        "'audiences'[0]: unknown audience 'patients'; expected one of innovators, adopters, commissioners, policy-makers"
        in lines[0]
    )
    assert "theme 4 (" in lines[1]
    assert (
        "unknown stage 'piloting'; expected one of before-pilot, pilot-to-early-adoption, scaling, sustaining"
        in lines[1]
    )


def test_a_theme_must_cover_its_points_audiences(corpus_copy, real_names):
    def change(themes):
        theme = theme_entry(themes, "running-a-good-pilot")
        theme["audiences"] = ["adopters"]

    mutate(corpus_copy, change)
    with pytest.raises(GuidanceError) as info:
        _load(corpus_copy, real_names)
    assert "('running-a-good-pilot'): 'audiences' must include every value its points have" in str(info.value)


def test_a_repeated_theme_id_is_refused(corpus_copy, real_names):
    mutate(corpus_copy, lambda ts: ts[1].update(id=ts[0]["id"]))
    with pytest.raises(GuidanceError) as info:
        _load(corpus_copy, real_names)
    assert "theme id 'start-from-the-problem' appears twice" in str(info.value)


def test_a_missing_report_is_named(corpus_copy, real_names):
    mutate(corpus_copy, lambda ts: ts[0]["points"][0].update(source="no-such-report.txt"))
    with pytest.raises(GuidanceError) as info:
        _load(corpus_copy, real_names)
    assert "'source': 'no-such-report.txt' is not a file" in str(info.value)
