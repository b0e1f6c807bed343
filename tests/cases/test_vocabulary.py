"""The controlled vocabularies: phrases found in free text, the longer first, plurals, head nouns."""

from __future__ import annotations

from advisor.cases import Term, Vocabulary


def test_a_generic_head_noun_is_not_a_criterion(catalogue):
    vocab = catalogue.vocabulary
    assert vocab.parse("used in mental health services") == {"setting": frozenset({"mental health"})}
    assert vocab.parse("randomised controlled trial evidence") == {
        "evidence_type": frozenset({"clinical trial"})
    }
    # standing alone, the same words still name their value
    assert vocab.parse("which services") == {"innovation_type": frozenset({"service model"})}
    assert vocab.parse("backed by evidence") == {"mechanism": frozenset({"evidence"})}
    # a phrase also reads in the plural
    assert vocab.parse("private companies in GP surgeries") == {
        "organisation_type": frozenset({"private company"}),
        "setting": frozenset({"primary care"}),
    }


VOCAB = Vocabulary(
    [
        Term("setting", "primary care", "GPs", ("primary care network", "network")),
        Term("mechanism", "professional networks", "networks", ("network",)),
        Term("organisation_type", "health innovation network", "AHSNs", ("AHSN",)),
        Term("mechanism", "health innovation network support", "help from AHSNs", ("AHSN",)),
    ]
)


def test_the_longer_phrase_wins():
    found = VOCAB.find("a primary care network")
    assert [(span, sorted(t)) for span, t in found] == [((2, 22), [("setting", "primary care")])]


def test_a_phrase_shared_by_fields_goes_to_the_preferred_one():
    assert VOCAB.parse("an AHSN") == {"organisation_type": frozenset({"health innovation network"})}
    assert VOCAB.parse("an AHSN", prefer=["mechanism"]) == {
        "mechanism": frozenset({"health innovation network support"})
    }
    assert VOCAB.parse_all("an AHSN") == {
        "organisation_type": frozenset({"health innovation network"}),
        "mechanism": frozenset({"health innovation network support"}),
    }


def test_membership_and_values():
    assert ("setting", "primary care") in VOCAB and ("setting", "hospital") not in VOCAB
    assert VOCAB.values("mechanism") == ["professional networks", "health innovation network support"]
    assert VOCAB.values("barrier") == []
