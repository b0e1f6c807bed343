"""Answer-level metrics, offline: does the answer carry what the reference answer carries?

Retrieval metrics say whether the right passage was found; these say whether the answer a user
reads holds it. All three work on the advisor's JSON record (`Answer.to_record()`) and
an eval row's reference answer and quotes, with no model:

- `key_fact_recall`: the numbers, amounts, dates and names of the reference answer that the
  answer carries (facts the question itself states are not counted: repeating them answers nothing);
- `cited_evidence_hit`: 1 when a passage the answer cites holds a reference quote;
- `filler_share`: the share of answer sentences that share no content with the reference answer
  or its quotes.

A refusal of a question the reports answer carries nothing: it scores 0 on the first two
(`scoring` decides which rows are scored), and has no sentences for the third.
"""

from __future__ import annotations

import math
import re
import typing as t
from functools import cache
from pathlib import Path

from advisor.text import numbers, stem

# a run of capitalised words (with the small words that join names: "Point of Care Foundation")
_NAME = re.compile(
    r"\b(?:[A-Z][\w'’+-]*|[A-Z]{2,}[\w+-]*)(?:\s+(?:(?:of|and|for|the|in|&)\s+)?(?:[A-Z][\w'’+-]*))*"
)
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n\s*)$")
_WORD = re.compile(r"[a-z0-9][a-z0-9+'’-]*")


def _fold(text: str) -> str:
    """Lower case, punctuation to spaces (keeping '+' and '.' inside numbers), white space folded."""
    text = re.sub(r"['’]s\b", "", text.lower())  # possessive: "NHS England's" -> "nhs england"
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,200 -> 1200
    text = re.sub(r"[^\w\s+.%£$]|(?<!\d)\.|\.(?!\d)", " ", text)
    return re.sub(r"\s+", " ", text).strip()


@cache
def _lowercase_words(corpus_dir: str) -> frozenset[str]:
    """Words the reports write in lower case somewhere (a capitalised one opening a sentence is no name)."""
    words: set[str] = set()
    for path in Path(corpus_dir).glob("*.txt"):
        words |= set(re.findall(r"\b[a-z][a-z'-]+\b", path.read_text(encoding="utf-8")))
    return frozenset(words)


def key_facts(reference: str, question: str = "", corpus_dir: Path | None = None) -> list[str]:
    """The numbers and names a reference answer states, less those the question already states.

    Numbers come as normalised digits; names are runs of capitalised words and acronyms. A single
    capitalised word opening a sentence counts only when the reports never write it in lower
    case (so "They" and "Funding" are not names, "KardiaMobile" is).
    """
    lower = _lowercase_words(str(corpus_dir)) if corpus_dir else frozenset()
    asked_numbers = numbers(question)
    asked = f" {_fold(question)} "
    facts: list[str] = [n for n in sorted(numbers(reference)) if n not in asked_numbers]
    for m in _NAME.finditer(reference):
        name = m.group().strip()
        words = name.split()
        at_start = bool(_SENTENCE_START.search(reference[: m.start()]))
        if at_start and len(words) == 1 and (name.lower() in lower or not corpus_dir) and not name.isupper():
            continue
        if at_start and len(words) > 1 and words[0].lower() in lower and not words[0].isupper():
            name = " ".join(words[1:])  # "The Point of Care Foundation" -> "Point of Care Foundation"
        folded = _fold(name)
        if not folded or folded.isdigit() or f" {folded} " in asked:
            continue
        if folded not in facts:
            facts.append(folded)
    return facts


def fact_carried(fact: str, answer: str, answer_numbers: set[str] | None = None) -> bool:
    """Whether the answer states the fact: the same number, or the name as a phrase."""
    if re.fullmatch(r"[\d.]+", fact):
        return fact in (answer_numbers if answer_numbers is not None else numbers(answer))
    return f" {fact} " in f" {_fold(answer)} "


def key_fact_recall(reference: str, question: str, answer: str, corpus_dir: Path | None = None) -> float:
    """Share of the reference answer's key facts the answer carries (nan when it states none)."""
    facts = key_facts(reference, question, corpus_dir)
    if not facts:
        return math.nan
    found = numbers(answer)
    return sum(fact_carried(f, answer, found) for f in facts) / len(facts)


def cited_passages(record: dict) -> list[str]:
    """The texts of the passages the answer's sentences cite, in citation order."""
    passages = {p["chunk_id"]: p["text"] for p in record.get("passages", [])}
    markers = {m for s in record.get("sentences") or [] for m in s.get("markers", [])}
    out = []
    for c in record.get("citations", []):
        if c.get("marker") in markers and c.get("chunk_id") in passages:
            out.append(passages[c["chunk_id"]])
    return out


def cited_evidence_hit(record: dict, reference_contexts: t.Sequence[str], found) -> float:
    """1 when a passage the answer cites holds one of the reference quotes (0 for a refusal)."""
    if not reference_contexts:
        return math.nan
    if record.get("refused"):
        return 0.0
    cited = cited_passages(record)
    return float(bool(cited) and any(found(q, cited) for q in reference_contexts))


# ---- filler ---------------------------------------------------------------------------
def _stop_words() -> frozenset[str]:
    from advisor.question import english_stop_words

    return english_stop_words()


@cache
def common_corpus_words(corpus_dir: str, share: float = 0.2) -> frozenset[str]:
    """Words in more than `share` of the reports' 120-word windows ("nhs", "innovation", "spread").

    Sharing only these with the reference shows a sentence is on the reports' topic, not that it
    carries the answer.
    """
    windows: list[set[str]] = []
    for path in sorted(Path(corpus_dir).glob("*.txt")):
        words = _WORD.findall(path.read_text(encoding="utf-8").lower())
        windows += [{stem(w) for w in words[i : i + 120]} for i in range(0, len(words), 120)]
    counts: dict[str, int] = {}
    for window in windows:
        for w in window:
            counts[w] = counts.get(w, 0) + 1
    return frozenset(w for w, c in counts.items() if c > share * len(windows))


def content_words(text: str, exclude: t.Collection[str] = ()) -> set[str]:
    """Stemmed words of a text that carry content: not stop words, not in `exclude`."""
    stops = _stop_words()
    out = set()
    for w in _WORD.findall(text.lower().replace("’", "'")):
        w = w.strip("'-")
        if len(w) < 3 and not w.isdigit():
            continue
        if w in stops:
            continue
        s = stem(w)
        if s not in exclude:
            out.add(s)
    return out


def filler_share(
    record: dict,
    question: str,
    reference: str | None,
    reference_contexts: t.Sequence[str] | None,
    corpus_dir: Path | None = None,
    min_shared: int = 2,
) -> float:
    """Share of the answer's sentences sharing no content with the reference answer or quotes.

    A sentence carries content when it shares at least `min_shared` content words with the
    reference answer and quotes, not counting the question's own words or the words found all
    over the reports, or states one of the reference's numbers. Nan for a refusal or an answer
    without sentences, or a row without a reference.
    """
    sentences = [s["text"] for s in record.get("sentences") or [] if s.get("text", "").strip()]
    if record.get("refused") or not sentences or not (reference or reference_contexts):
        return math.nan
    common = common_corpus_words(str(corpus_dir)) if corpus_dir else frozenset()
    asked = content_words(question)
    target_text = " ".join([reference or "", *(reference_contexts or ())])
    target = content_words(target_text, exclude=asked | common)
    target_numbers = numbers(target_text) - numbers(question)
    filler = 0
    for sentence in sentences:
        shared = content_words(sentence, exclude=asked | common) & target
        if len(shared) < min_shared and not (numbers(sentence) & target_numbers):
            filler += 1
    return filler / len(sentences)
