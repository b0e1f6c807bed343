"""The shared text primitives: white space, folding, tokens, stems, numbers and quote location."""

from __future__ import annotations

from advisor.text import (
    MD_LINK,
    fold,
    normalise_space,
    numbers,
    quote_found,
    quote_found_exact,
    stem,
    tokenize,
)


def test_normalise_space_folds_line_breaks_and_no_break_spaces():
    assert normalise_space("  NHS\u00a0England\n\n funded \t it ") == "NHS England funded it"


def test_fold_drops_case_and_punctuation():
    assert fold("The NHS's \u201cfront door\u201d, again!") == "the nhs s front door again"


def test_tokenize_drops_stop_words_and_strips_plurals():
    assert tokenize("What are the barriers to adopting innovations?") == ["barrier", "adopting", "innovation"]


def test_stem_joins_inflections():
    assert stem("persuaded") == stem("persuade") == "persuad"
    assert stem("categorie") == "category"


def test_numbers_reads_digits_and_number_words():
    assert numbers("1,200 patients in seven sites by 2015.") == {"1200", "7", "2015"}


def test_markdown_links_read_as_their_text():
    assert MD_LINK.sub(r"\1", "see [engagement events](#) here") == "see engagement events here"


def test_a_near_quote_must_keep_its_numbers():
    passage = "Today there are 71 centres across the UK delivering DAFNE, covering 147 localities."
    assert quote_found("there are 71 centres across the UK delivering DAFNE", [passage])
    assert not quote_found("there are 17 centres across the UK delivering DAFNE", [passage])
    assert quote_found("there are 71 centers across the UK delivering DAFNE", [passage])  # one letter
    assert not quote_found_exact("there are 71 centers across the UK delivering DAFNE", [passage])
