"""Sentence splitting and the rule-based follow-up rewrite."""

from advisor.condense import RuleBasedCondenser, is_follow_up, message_text
from advisor.sentences import sentence_spans, split_sentences


def test_splits_on_sentence_ends_but_not_abbreviations_or_decimals():
    text = (
        "Innovators used many tactics, e.g. champions and networks. The NHS spent £2.5m on it. "
        "Dr. Smith agreed. “It worked,” she said. Next"
    )
    assert split_sentences(text) == [
        "Innovators used many tactics, e.g. champions and networks.",
        "The NHS spent £2.5m on it.",
        "Dr. Smith agreed.",
        "“It worked,” she said.",
        "Next",
    ]


def test_paragraph_breaks_and_bullets_end_sentences():
    text = "Key insights\n\n- A dual strategy to reach patients\n- Building evidence"
    assert split_sentences(text) == [
        "Key insights",
        "- A dual strategy to reach patients",
        "- Building evidence",
    ]


def test_spans_are_verbatim_offsets():
    text = "First one here.  Second one there!\nThird?"
    for s, e in sentence_spans(text):
        assert text[s:e].strip() == text[s:e]
    assert [text[s:e] for s, e in sentence_spans(text)] == ["First one here.", "Second one there!", "Third?"]


def test_follow_up_carries_the_previous_question():
    history = [
        {"role": "user", "content": "How did innovators persuade late adopters?"},
        {"role": "assistant", "content": "By evidence [1]."},
    ]
    query = RuleBasedCondenser().condense("What about in primary care?", history)
    assert query == "How did innovators persuade late adopters? What about in primary care?"


def test_standalone_question_is_left_alone():
    history = [{"role": "user", "content": "How did KardiaMobile spread?"}]
    q = "Which national programmes fund NHS innovation adoption?"
    assert RuleBasedCondenser().condense(q, history) == q
    assert not is_follow_up(q)


def test_gradio_parts_and_pairs_are_read():
    assert (
        message_text([{"type": "text", "text": "hello"}, {"type": "text", "text": "there"}]) == "hello there"
    )
    pairs = [("How did DAFNE spread?", "It spread [1].")]
    assert RuleBasedCondenser().condense("And why did it work?", pairs).startswith("How did DAFNE spread?")
