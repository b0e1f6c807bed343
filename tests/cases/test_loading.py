"""Loading the catalogue: every entry against the manifest, every quote against its case study."""

from __future__ import annotations

import pytest

from advisor.cases import CATALOGUE_NAME, TAG_FIELDS, load_catalogue, normalise_space
from advisor.cases.loading import CaseText
from advisor.chunking import locate_case_studies
from advisor.corpus import Manifest
from advisor.errors import CatalogueError
from tests.cases.helpers import BROKEN, NUFFIELD, ODDS, mutate
from tests.conftest import CORPUS


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
        bounds = {
            s.name: (a, b) for s, a, b in locate_case_studies(raw, manifest.case_studies_for(case.source))
        }
        first, end = bounds[case.name]
        own = normalise_space(" ".join(raw[first:end]).replace("[engagement events](#)", "engagement events"))
        for e in case.evidence:
            assert e.quote in own, f"{case.name} / {e.field}: {e.quote!r}"
            assert first + 1 <= e.line <= end, f"{case.name} / {e.field}: line {e.line}"
            assert normalise_space(e.quote).split()[0] in raw[e.line - 1] or "[" in raw[e.line - 1]
            checked += 1
    assert checked == sum(len(c.evidence) for c in catalogue.cases) >= 400


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


def test_a_case_carries_its_report_and_where_it_is(catalogue):
    kardia = catalogue.get("KardiaMobile")
    assert kardia.source == NUFFIELD and kardia.year == 2020 and kardia.title
    first, last = kardia.lines
    assert first < last and all(first <= e.line <= last for e in kardia.evidence)


def test_case_text_finds_a_wrapped_quote_and_its_first_line():
    raw = ["Intro line.", "The first  uses in the", "NHS were within [secondary care](#).", "Next."]
    text = CaseText(raw, 1, 3)
    assert text.text == "The first uses in the NHS were within secondary care."
    assert text.locate("uses in the\nNHS were") == 2
    assert text.locate("NHS were within secondary care") == 3
    assert text.locate("Intro line") is None  # outside the case study's lines


# ---- a broken catalogue ---------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_catalogue_is_refused_naming_entry_and_field(corpus_copy, kind):
    change, expected = BROKEN[kind]
    mutate(corpus_copy, change)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(corpus_copy)
    for part in expected:
        assert part in str(info.value), str(info.value)


def test_invalid_yaml_is_refused(corpus_copy):
    (corpus_copy / CATALOGUE_NAME).write_text("cases: [unclosed\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(corpus_copy)


def test_a_case_named_twice_is_refused(corpus_copy):
    mutate(corpus_copy, lambda cs: cs.append(dict(cs[0])))
    with pytest.raises(
        CatalogueError, match=r"case 24 \('KardiaMobile'\): field 'name': 'KardiaMobile' appears twice"
    ):
        load_catalogue(corpus_copy)
