"""Cleaning and chunking on the real corpus: case studies found, furniture gone, text readable."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from advisor.chunking import Chunker, locate_case_studies
from advisor.cleaning import clean_blocks, clean_text
from advisor.config import PROJECT_ROOT
from advisor.corpus import Manifest, discover_files
from advisor.loaders import load_document

CORPUS = PROJECT_ROOT / "corpus"
MANIFEST = Manifest.load(CORPUS)
FILES = discover_files([CORPUS])

# Case-study names and words that must appear in at least one of their chunks.
EXPECTED_CASES = {
    "nuffield-2020-achieving-scale-and-spread.txt": {
        "KardiaMobile": "ECG",
        "Patients Know Best": "PKB",
        "Schwartz Rounds (Point of Care Foundation)": "Rounds",
        "ERAS+": "surgery",
        "Next Generation Electronic Patient Record (Nervecentre)": "Nervecentre",
        "OBH Outcomes Platform": "OBH",
        "Lantum": "Lantum",
        "my mhealth (myCOPD)": "myCOPD",
    },
    "against-the-odds-2018-report.txt": {
        "Altogether Better": "Health Champions",
        "DAFNE": "diabetes",
        "ERAS": "surgery",
        "Florence (Flo)": "Florence",
        "High-sensitivity troponin testing": "troponin",
        "Implantable Cardioverter-Defibrillators (ICDs)": "ICD",
        "IAPT": "IAPT",
        "Macmillan Cancer Nurse Specialists": "Macmillan",
        "RAID": "RAID",
        "Schwartz Rounds (UK)": "Schwartz",
    },
    "hin-south-london-2025-technology-enabled-service-change.txt": {
        "Ambient Voice Technology in London": "AVT",
    },
    "nhs-confederation-2023-scaling-innovation.txt": {
        "Community diagnostic centres (CDCs)": "CDC",
        "CAR-T therapy": "CAR-T",
        "FeNO testing": "FeNO",
        "Barnsley CDC in the Glass Works": "Barnsley",
    },
}

FURNITURE = [
    re.compile(r"\d+Achieving scale and spread"),
    re.compile(r"(^|\n)1 2 3 4 5 6($|\n)"),
    re.compile(r"Case study \d+: The spread of"),
    re.compile(r"\.{4,}|_{3,}|\t"),
    re.compile(r"External link icon"),
    re.compile(r"\]\(#?\)|\]\(http"),
    re.compile(r"[•\uf0b7]"),
]


def _chunks(name: str):
    path = CORPUS / name
    doc = load_document(path, MANIFEST.info_for(path))
    return doc, Chunker(220, 30).chunk(
        doc, MANIFEST.case_studies_for(name), MANIFEST.running_headers_for(name)
    )


@pytest.fixture(scope="module")
def all_chunks():
    return {path.name: _chunks(path.name)[1] for path in FILES}


def test_every_listed_case_study_is_found_in_its_report():
    for name, cases in EXPECTED_CASES.items():
        raw = (CORPUS / name).read_text(encoding="utf-8").split("\n")
        located = locate_case_studies(raw, MANIFEST.case_studies_for(name))
        assert [spec.name for spec, _, _ in located] == list(cases), name
        starts = [start for _, start, _ in located]
        assert starts == sorted(starts)


@pytest.mark.parametrize("source", list(EXPECTED_CASES))
def test_case_study_chunks_are_labelled_and_about_their_case(all_chunks, source):
    chunks = all_chunks[source]
    by_case: dict[str, list] = {}
    for c in chunks:
        if c.case_study:
            by_case.setdefault(c.case_study, []).append(c)
    assert set(by_case) == set(EXPECTED_CASES[source])
    for case, word in EXPECTED_CASES[source].items():
        assert any(word.lower() in c.text.lower() for c in by_case[case]), (case, word)


def test_a_case_studys_chunks_are_contiguous(all_chunks):
    """Chunks come in document order, and once another case study starts an earlier one never
    resumes: a case study's chunks form one run."""
    for source, chunks in all_chunks.items():
        indexes = [c.meta["chunk_index"] for c in chunks]
        assert indexes == sorted(indexes)
        seen: list[str] = []
        for c in chunks:
            if c.case_study and (not seen or seen[-1] != c.case_study):
                assert c.case_study not in seen, f"{source}: {c.case_study} resumes after another case"
                seen.append(c.case_study)


def test_no_page_furniture_survives_into_any_chunk(all_chunks):
    for source, chunks in all_chunks.items():
        for c in chunks:
            for pattern in FURNITURE:
                assert not pattern.search(c.text), f"{source} #{c.meta['chunk_index']}: {pattern.pattern}"
            assert not re.search(r"(?m)^\s*\d{1,3}\s*$", c.text), "a lone page number survived"


def test_hard_wraps_are_rejoined_into_sentences(all_chunks):
    text = "\n".join(c.text for c in all_chunks["nuffield-2020-achieving-scale-and-spread.txt"])
    assert "innovators have made efforts to scale up and spread innovation in the NHS" in text
    ato = "\n".join(c.text for c in all_chunks["against-the-odds-2018-report.txt"])
    assert "Innovations ranging from checklists and care bundles to telehealth" in ato
    # a paragraph never holds a line break inside it
    for chunks in all_chunks.values():
        for c in chunks:
            for para in c.text.split("\n\n"):
                assert "\n" not in para.strip()


def test_compound_hyphens_are_kept_and_typesetting_hyphens_removed():
    text = "The Trust-\nwide roll-out was agreed. The organ-\nisation grew. An organisation is a body."
    cleaned = clean_text(text)
    assert "Trust-wide" in cleaned
    assert "organisation grew" in cleaned


def test_contents_pages_and_figure_fragments_are_dropped():
    text = (
        "Contents\n\nExecutive summary\t\t\t\t\n\np.4\n\nIntroduction .......... 7\n\n"
        "Adoption follows a curve, as the figure shows.\n\n"
        "Oct\n\n2014\n\n34%\n\nEarly majority\n\nLate majority\n\nLaggards\n\n"
        "Introduction\n\nThe NHS has moved to a position where innovation matters more than ever.\n"
    )
    blocks = clean_blocks(text)
    texts = [b.text for b in blocks]
    assert texts == [
        "Adoption follows a curve, as the figure shows.",
        "Introduction",
        "The NHS has moved to a position where innovation matters more than ever.",
    ]
    assert [b.kind for b in blocks] == ["para", "heading", "para"]


def test_a_title_page_is_kept_as_one_paragraph():
    text = "Scaling Well\n\nAugust 2025\n\nDr Ann Smith and Bo Lee\n\nSummary\n\nThis paper sets out a blueprint.\n"
    blocks = clean_blocks(text)
    assert blocks[0].kind == "para"
    assert blocks[0].text == "Scaling Well. August 2025. Dr Ann Smith and Bo Lee. Summary."


def test_bullets_are_normalised():
    blocks = clean_blocks(
        "Key insights:\n\n•\n\nA dual strategy\n\n• Building evidence\n\n\uf0b7 Champions\n"
    )
    assert [b.text for b in blocks if b.kind == "bullet"] == [
        "- A dual strategy",
        "- Building evidence",
        "- Champions",
    ]


def test_markdown_links_and_artefacts_are_stripped():
    blocks = clean_blocks(
        "Read the guidance (PDF) External link icon\n\nA series of [engagement events](#) were held.\n"
    )
    assert [b.text for b in blocks] == ["Read the guidance (PDF)", "A series of engagement events were held."]


def test_chunk_metadata_is_complete_and_chroma_safe(all_chunks):
    for source, chunks in all_chunks.items():
        assert chunks, source
        for c in chunks:
            for key in (
                "source",
                "title",
                "publisher",
                "year",
                "section",
                "section_path",
                "case_study",
                "char_start",
                "char_end",
                "page",
                "chunk_index",
                "doc_hash",
            ):
                assert key in c.meta, key
            assert all(isinstance(v, (str, int, float, bool)) for v in c.meta.values())
            assert c.meta["source"] == source and c.title
            assert 0 < len(c.text.split()) <= 300


def test_chunk_ids_are_stable_and_unique():
    first = _chunks("nuffield-2020-achieving-scale-and-spread.txt")[1]
    second = _chunks("nuffield-2020-achieving-scale-and-spread.txt")[1]
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)


def test_sections_are_detected(all_chunks):
    sections = Counter(c.section for c in all_chunks["nuffield-2020-achieving-scale-and-spread.txt"])
    assert len(sections) >= 30
    assert sections.get("", 0) <= 2
    assert any("Generating and disseminating evidence" in s for s in sections)


def test_char_offsets_point_into_the_cleaned_text():
    name = "nuffield-2020-achieving-scale-and-spread.txt"
    path = CORPUS / name
    doc = load_document(path, MANIFEST.info_for(path))
    chunker = Chunker(220, 30)
    args = (doc, MANIFEST.case_studies_for(name), MANIFEST.running_headers_for(name))
    clean = chunker.clean_text(*args)
    chunks = chunker.chunk(*args)
    for c in chunks:
        span = clean[c.meta["char_start"] : c.meta["char_end"]]
        paragraphs = c.text.split("\n\n")
        assert span.startswith(paragraphs[0]) and span.endswith(paragraphs[-1]), c.meta["chunk_index"]


def test_pages_come_from_the_fused_running_headers(all_chunks):
    chunks = all_chunks["nuffield-2020-achieving-scale-and-spread.txt"]
    pages = [c.meta["page"] for c in chunks]
    assert pages[0] == 0  # before the first printed page number nothing is claimed
    known = [p for p in pages if p]
    assert known == sorted(known) and 90 <= known[-1] <= 100
    kardia = [c.meta["page"] for c in chunks if c.case_study == "KardiaMobile"]
    # the case study starts after the header of page 56, holds that of page 61 and ends
    # before that of page 67
    assert kardia == sorted(kardia) and all(56 <= p < 67 for p in kardia) and 61 in kardia, kardia
