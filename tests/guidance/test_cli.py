"""`advisor guidance`: text and JSON, filtered by theme, audience and stage, and its errors."""

from __future__ import annotations

import json

from tests.guidance.helpers import NUFFIELD, mutate, point_at, run_cli


def test_text_shows_a_themes_statement_quotes_and_where_they_are(guidance_map):
    theme = guidance_map.theme("patience-and-persistence")
    out = run_cli(["guidance", "--theme", theme.title])
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert theme.title in text and theme.statement in text
    point = next(p for p in theme.points if p.source == NUFFIELD and p.line == 359)
    assert f"“{point.quote}” ({NUFFIELD}, {point.section}, line 359)" in text
    assert "1 of " in text and f"themes, {len(theme.points)} points" in text
    assert "Start from the problem" not in text


def test_json_lists_every_theme(guidance_map):
    out = run_cli(["guidance", "--json"])
    assert out.returncode == 0, out.stderr
    themes = json.loads(out.stdout)
    assert [t["theme"] for t in themes] == [t.id for t in guidance_map.themes]
    assert themes[0] == guidance_map.themes[0].to_json()


def test_json_for_an_audience_and_stage_keeps_only_their_points():
    out = run_cli(["guidance", "--json", "--for", "policy-makers", "--stage", "sustaining"])
    assert out.returncode == 0, out.stderr
    themes = json.loads(out.stdout)
    points = [p for t in themes for p in t["points"]]
    assert points
    assert all("policy-makers" in p["audiences"] and "sustaining" in p["stages"] for p in points)


def test_json_theme_and_audience_together(guidance_map):
    out = run_cli(["guidance", "--json", "-t", "commissioning-for-spread", "--for", "innovators"])
    assert out.returncode == 0, out.stderr
    (theme,) = json.loads(out.stdout)
    expected = [
        p for p in guidance_map.theme("commissioning-for-spread").points if "innovators" in p.audiences
    ]
    assert theme["theme"] == "commissioning-for-spread"
    assert [p["line"] for p in theme["points"]] == [p.line for p in expected]


def test_an_unknown_theme_is_an_error_naming_the_themes_in_json_and_text():
    out = run_cli(["guidance", "--json", "--theme", "marketing"])
    assert out.returncode == 2
    error = json.loads(out.stdout)["error"]
    assert error.startswith("unknown theme 'marketing'; the themes are: start-from-the-problem, ")
    text = run_cli(["guidance", "--for", "patients"])
    assert text.returncode == 2 and text.stdout == ""
    assert (
        "unknown audience 'patients'; choose one of: innovators, adopters, commissioners, policy-makers"
        in " ".join(text.stderr.split())
    )


def test_a_broken_map_exits_2_naming_the_point(corpus_copy):
    mutate(corpus_copy, lambda ts: point_at(ts, NUFFIELD, 359)[1].update(line=358))
    out = run_cli(["guidance", "--json"], corpus=corpus_copy)
    assert out.returncode == 2
    error = json.loads(out.stdout)["error"]
    assert f"({NUFFIELD} line 358): 'line' is 358 but the quote starts on line 359" in error
