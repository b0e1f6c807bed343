"""Cleaning: extraction artefacts removed and sentences re-joined, on small texts and the real reports."""

from __future__ import annotations

import itertools
import re

import pytest

from advisor.cleaning import clean_blocks, clean_text
from advisor.config import PROJECT_ROOT
from advisor.corpus import Manifest

CORPUS = PROJECT_ROOT / "corpus"
MANIFEST = Manifest.load(CORPUS)


def _clean(name: str) -> str:
    raw = (CORPUS / name).read_text(encoding="utf-8")
    return clean_text(raw, MANIFEST.running_headers_for(name))


@pytest.fixture(scope="module")
def nuffield() -> str:
    return _clean("nuffield-2020-achieving-scale-and-spread.txt")


@pytest.fixture(scope="module")
def odds() -> str:
    return _clean("against-the-odds-2018-report.txt")


def test_a_sentence_wrapped_before_a_capital_stays_one_sentence():
    # the Nuffield layout: trailing space on every wrapped line, a blank line after each
    text = (
        "Realising the potential benefits to patients and the wider health system of more \n\n"
        "comprehensive access will require action from innovators and local and national \n\n"
        "NHS bodies. The insights in this report help. \n\n"
        "Key themes \n\n"
        "Innovators adapt their offer over time to suit what adopters need from them. \n"
    )
    blocks = clean_blocks(text)
    assert blocks[0].text.endswith("local and national NHS bodies. The insights in this report help.")
    assert [b.kind for b in blocks] == ["para", "heading", "para"]


def test_a_wrapped_dash_clause_is_not_a_bullet():
    text = (
        "However, scaling is often a messier reality than the curve suggests. In particular, the market \n\n"
        "– or indeed markets – and innovation itself do not remain static over time. \n"
    )
    blocks = clean_blocks(text)
    assert len(blocks) == 1 and blocks[0].kind == "para"
    assert "the market – or indeed markets – and innovation" in blocks[0].text


def test_a_numbered_heading_over_three_lines_is_one_heading():
    blocks = clean_blocks(
        "3. Enhanced\nRecovery After\nSurgery (ERAS)\n\nA surgery pathway that prepares patients.\n"
    )
    assert blocks[0].kind == "heading"
    assert blocks[0].text == "3. Enhanced Recovery After Surgery (ERAS)"


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("the Accelerated Access Review in 2016.4 And these have certainly helped.", "in 2016. And these"),
        (
            "integrating what are currently discrete innovations into new models.8, 9, 10 At the micro-level",
            "new models. At the micro-level",
        ),
        (
            "as the Darzi review has recognised (see page 61).36 This means that spread is slow.",
            "61). This means",
        ),
        ("High Quality Care for All. Department of Health, London, UK, p. 55", "UK, p. 55"),
    ],
)
def test_footnote_references_are_dropped_but_page_references_kept(raw, clean):
    assert clean in clean_text(raw)


def test_no_running_header_or_navigation_line_survives(nuffield, odds):
    assert not re.search(r"(?m)^\d{1,3}Achieving scale and spread", nuffield)
    assert not re.search(r"(?m)^1 2 3 4 5 6$", nuffield)
    assert not re.search(r"(?m)^Against the odds: insights from the case studies$", odds)
    assert not re.search(r"(?m)^Case study \d+: The spread of", odds)


def test_contents_pages_are_gone_from_the_real_reports(odds):
    hin = _clean("hin-south-london-2025-technology-enabled-service-change.txt")
    for text in (odds, hin):
        assert not re.search(r"\.{4,}|_{3,}|\t", text)
        assert not re.search(r"(?m)^p\.\s?\d+$", text)


def test_real_sentences_are_rejoined(nuffield, odds):
    assert "will require action from innovators and local and national NHS bodies." in nuffield
    assert "In particular, the market – or indeed markets – and innovation itself" in nuffield
    assert "(for example, Albury and others, 2018; Collins, 2018)" in nuffield
    assert "8. The role of external funding to support spread – external funding can be valuable" in odds


def test_real_hyphenation(nuffield, odds):
    # typesetting hyphens joined, compounds kept
    assert "organ-\nisation" not in nuffield
    assert not re.search(r"\b(?:organ|innov|implement)- ?(?:isation|ation|ing)\b", nuffield + odds)
    assert "decision-making" in nuffield
    assert "long-term" in nuffield


def test_no_paragraph_ends_mid_sentence_before_a_capital(nuffield):
    """A paragraph ending in a lower-case word with no punctuation, followed by one that
    starts with a capital, is a sentence cut in two. Seven such pairs remain, all two-line
    case-study headings ("... has helped smooth the path for later adopters"); before the
    page-wrap fix there were dozens of real cuts."""
    paras = nuffield.split("\n\n")
    cut = [
        (a[-40:], b[:40])
        for a, b in itertools.pairwise(paras)
        if len(a.split()) > 15 and re.search(r"[a-z]$", a) and b[:1].isupper() and len(b.split()) > 15
    ]
    assert len(cut) <= 8, cut
