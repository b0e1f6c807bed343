"""The coverage decision on the real corpus: questions the reports do not cover are refused,
paraphrases of what they do cover are answered.

None of these questions is in eval_sets/dev.jsonl (formerly full.jsonl) or the test split, so they
check the decision on wordings it was not fitted on. With the calibrated coverage model (fit on
dev): all 15 in-scope paraphrases answered (15 under the older rare-word gate) and 14 of the
17 out-of-scope questions refused (12 before). The three still answered ask for a figure about
something the reports discuss in general terms (A&E waits, ambulance targets, nursing vacancies):
the evidence is about as close as for an in-scope paraphrase, and everyday words ("vacancies",
"ambulance") are not evidence of a gap. They are strict xfails, so fixing one shows up here.
"""

from __future__ import annotations

import pytest

from advisor.answer import ReportTerms
from advisor.text import stem, tokenize
from advisor.types import Chunk

NUFFIELD = "nuffield-2020-achieving-scale-and-spread.txt"
ATO = "against-the-odds-2018-report.txt"
HIN = "hin-south-london-2025-technology-enabled-service-change.txt"

# (question, the report a citation must come from): paraphrases, not the reports' wording
IN_SCOPE = [
    ("Why do finance teams find it hard to back a new digital product?", HIN),
    ("What were the open questions about ambient voice technology in 2024?", HIN),
    ("How did spinning Florence out into a social enterprise help it grow?", ATO),
    ("Why did Macmillan taper its funding for new nurse posts?", ATO),
    ("What doubts did the DAFNE team have to overcome to recruit people to its first study?", ATO),
    ("What part did the NHS Test Beds play in spreading innovation?", NUFFIELD),
    ("What evidence did the GP federation want before adopting Lantum?", NUFFIELD),
    ("How do Schwartz Rounds help staff cope with the emotional side of caring?", ATO),
    ("How long does it typically take for an innovation to spread across the NHS?", NUFFIELD),
    ("How did DAFNE finally win over doubtful consultants?", ATO),
    ("Why is patient feedback from a test bed useful to an innovator?", NUFFIELD),
    ("How should an innovator build a business case for NHS finance teams?", HIN),
    ("What is the Innovation and Technology Payment and what did it build on?", NUFFIELD),
    ("How do Academic Health Science Networks help innovations spread?", NUFFIELD),
    ("What do adopters need from innovators to feel confident taking on a new product?", NUFFIELD),
]


def _missed(question: str, why: str):
    return pytest.param(question, marks=pytest.mark.xfail(strict=True, reason=why), id=question[:40])


CLOSE = "a figure about something the reports discuss in general terms: evidence as close as a paraphrase's"
# Plausible NHS questions whose subject the five reports never discuss
OUT_OF_SCOPE = [
    "How long is the waiting list for cataract surgery in Kent?",
    "What does the MHRA require before software as a medical device can be sold?",
    "How much does the NHS pay for a month of semaglutide injections?",
    "What are the GDPR rules for storing patient records in the cloud?",
    "How do I get my app listed in the NHS App Library?",
    _missed("What percentage of A&E patients were seen within four hours last winter?", CLOSE),
    "How does the Cancer Drugs Fund decide which medicines to pay for?",
    "What pay rise were resident doctors offered to end the strikes?",
    _missed("What is the ambulance response time target for category 2 calls?", CLOSE),
    "What are the common side effects of statins?",
    "How do I get an NHS number for a newborn baby?",
    "What does the CQC look for when it inspects a GP practice?",
    "How many midwives work in NHS Scotland?",
    "Which hospitals have bought a da Vinci surgical robot?",
    "How do I get ISO 13485 certification for my device?",
    _missed("How many nursing vacancies does the NHS in England have?", CLOSE),
    "How much does an MRI scanner cost to buy for a diagnostic centre?",
]


@pytest.mark.parametrize("question,source", IN_SCOPE, ids=[q[:40] for q, _ in IN_SCOPE])
def test_paraphrased_questions_the_reports_cover_are_answered(built_advisor, question, source):
    answer = built_advisor.ask(question)
    assert not answer.refused, answer.text
    assert source in {c.passage.chunk.source for c in answer.citations}


@pytest.mark.parametrize(
    "question", [q if not isinstance(q, str) else pytest.param(q, id=q[:40]) for q in OUT_OF_SCOPE]
)
def test_plausible_questions_the_reports_do_not_cover_are_refused(built_advisor, question):
    answer = built_advisor.ask(question)
    assert answer.refused, answer.text
    assert answer.citations == ()


def test_a_refusal_names_the_words_the_reports_never_use_and_the_closest_topics(built_advisor):
    ukca = built_advisor.ask("How do I get a UKCA mark for my medical device before selling it to the NHS?")
    assert ukca.refused
    assert "never mention: ukca." in ukca.text
    assert "The closest topics they do cover:" in ukca.text
    assert "listed below" not in ukca.text  # the text promises only what every front end shows
    assert ukca.analysis["coverage"]["not_covered_probability"] >= 0.5


@pytest.mark.xfail(
    strict=True,
    reason="'hip' and 'replacement' are everyday English words, and the ERAS "
    "waiting-time passages are as close as a paraphrase's evidence (not-covered probability 0.43)",
)
def test_the_hip_replacement_waiting_list_is_refused(built_advisor):
    assert built_advisor.ask("What is the current NHS waiting list for hip replacements?").refused


def test_common_words_of_a_paraphrase_are_not_unmatched(built_advisor):
    question = "How did the makers of the KardiaMobile ECG device decide who to target in the NHS?"
    passages = built_advisor.retriever.retrieve(question)
    assert built_advisor.extractive.unmatched_terms(question, passages) == []


def test_words_of_the_report_titles_and_publishers_are_known(built_advisor):
    # "Nuffield" is in no passage's text, only in its report's title and publisher
    question = "How many interviews did the Nuffield Trust research involve?"
    passages = built_advisor.retriever.retrieve(question)
    assert "nuffield" not in built_advisor.extractive.unmatched_terms(question, passages)


@pytest.mark.parametrize(
    "a,b",
    [
        ("persuaded", "persuade"),
        ("tapered", "taper"),
        ("spinning", "spin"),
        ("categories", "category"),
        ("beds", "bed"),
        ("decommissioning", "decommission"),
        ("trust's", "trust"),
    ],
)
def test_stem_meets_inflections(a, b):
    assert [stem(t) for t in tokenize(a)] == [stem(t) for t in tokenize(b)]


def test_report_terms_count_passages_by_stem():
    chunks = [
        Chunk(
            "c1",
            "a.txt",
            "Clinicians were persuaded by the pilot.",
            {"title": "Scaling", "publisher": "Trust"},
        ),
        Chunk("c2", "a.txt", "A pilot persuades nobody alone.", {"title": "Scaling", "publisher": "Trust"}),
    ]
    terms = ReportTerms.from_chunks(chunks)
    assert terms.passage_count[stem("pilot")] == 2
    assert terms.passage_count[stem("persuade")] == 2
    assert terms.passage_count[stem("scaling")] == 2  # the title counts
    assert stem("clinician") in terms.by_chunk["c1"] and stem("clinician") not in terms.by_chunk["c2"]
