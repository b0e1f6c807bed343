"""Evidence units: a quoted sentence with what it needs to stand alone, verbatim from its passage.

Generic over any report: a sentence that leans on the one before it in the same paragraph
brings that sentence, and a list's lead-in brings its items.
"""

from __future__ import annotations

import re

from advisor.sentences import sentence_spans

UNIT_MAX_WORDS = 150  # an evidence unit (sentence + what it leans on) stays readable
LIST_ITEMS = 4  # items a list's lead-in brings along
END_PUNCT = re.compile(r"""[.!?…]["”’')\]]*$""")
# English function words by which a sentence leans on the one before it (a closed class of the
# language, not wordings of any question): "This final change...", "However, ...", "For others..."
_LEANS_BACK = re.compile(
    r"^(this|these|that|those|it|its|they|their|them|such|however|but|also|moreover|furthermore|"
    r"instead|similarly|likewise|nevertheless|therefore|thus|for others|in addition|"
    r"as a result|in turn|by contrast|in contrast|neither|the latter|the former)\b",
    re.IGNORECASE,
)
LEAD_IN = re.compile(r":\s*$")


def evidence_unit(text: str, start: int, sentence: str) -> str:
    """The sentence starting at `start` in a passage's `text`, with what it needs to stand alone,
    verbatim.

    A sentence that leans on the one before it in the same paragraph ("This final change...",
    "However, ...") brings that sentence along; a list's lead-in ("...to consider:") brings
    its items (up to LIST_ITEMS, within UNIT_MAX_WORDS).
    """
    spans = sentence_spans(text)
    at = next((i for i, (s, _) in enumerate(spans) if s == start), None)
    if at is None:
        return sentence
    first, last = at, at
    if at > 0 and _LEANS_BACK.match(sentence):
        gap = text[spans[at - 1][1] : spans[at][0]]
        before = text[spans[at - 1][0] : spans[at - 1][1]]
        if "\n" not in gap and END_PUNCT.search(before):
            first = at - 1
    if LEAD_IN.search(sentence):
        while last + 1 < len(spans) and last - at < LIST_ITEMS:
            if len(text[spans[first][0] : spans[last + 1][1]].split()) > UNIT_MAX_WORDS:
                break
            last += 1
    if first == last == at:
        return sentence
    return text[spans[first][0] : spans[last][1]]
