"""The `advisor` console script, run as a user would run it (a subprocess through its entry point)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ADVISOR = str(Path(sys.executable).with_name("advisor"))


def run(args, settings, timeout=300, input_text=None):
    env = {
        **os.environ,
        "ADVISOR_DATA_DIR": str(settings.data_dir),
        "ADVISOR_CORPUS_DIR": str(settings.corpus_dir),
    }
    return subprocess.run(
        [ADVISOR, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        check=False,
    )


def test_ask_json_prints_the_contract(built_advisor, built_settings):
    out = run(["ask", "How did KardiaMobile reach patients?", "--json", "-k", "4"], built_settings)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["question"] == "How did KardiaMobile reach patients?"
    assert not record["refused"] and record["citations"]
    assert len(record["passages"]) == 4
    assert record["citations"][0]["quote"] in record["answer"]


def test_ask_with_doc_and_case_study_filters(built_advisor, built_settings):
    out = run(["ask", "What helped it spread?", "--json", "--case-study", "Lantum"], built_settings)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert {p["case_study"] for p in record["passages"]} == {"Lantum"}


def test_ask_plain_text_shows_sources(built_advisor, built_settings):
    out = run(["ask", "What are the three core pillars for adopting a proven innovation?"], built_settings)
    assert out.returncode == 0, out.stderr
    assert "Sources" in out.stdout and "[1]" in out.stdout


@pytest.mark.parametrize("question", ["", "   ", "x" * 10_000])
def test_bad_question_exits_non_zero_with_a_message(built_settings, question):
    out = run(["ask", question], built_settings, timeout=120)
    assert out.returncode == 2
    assert "Error:" in out.stderr and "Traceback" not in out.stderr


def test_sources_lists_reports_and_case_studies(built_advisor, built_settings):
    out = run(["sources", "--json"], built_settings)
    assert out.returncode == 0, out.stderr
    docs = {d["source"]: d for d in json.loads(out.stdout)}
    assert len(docs) == 5
    assert "KardiaMobile" in docs["nuffield-2020-achieving-scale-and-spread.txt"]["case_studies"]


def test_chat_answers_a_follow_up(built_advisor, built_settings):
    out = run(
        ["chat"],
        built_settings,
        input_text="How did KardiaMobile reach patients?\nWhat about its evidence?\n\n",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("Sources") >= 2
    assert "Searched for: How did KardiaMobile reach patients? What about its evidence?" in out.stdout


def test_ask_builds_the_index_first_when_missing(make_settings, tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    src = Path(__file__).resolve().parent.parent / "corpus"
    shutil.copy(src / "nhs-confederation-2023-scaling-innovation.txt", corpus)
    settings = make_settings(corpus=corpus)
    out = run(
        ["ask", "What are the three core pillars for adopting a proven innovation?", "--json"], settings
    )
    assert out.returncode == 0, out.stderr
    assert "No index yet" in out.stderr
    assert json.loads(out.stdout)["citations"]


def test_ingest_reports_skipped_files(make_settings, tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    src = Path(__file__).resolve().parent.parent / "corpus"
    shutil.copy(src / "against-the-odds-2018-news-release.txt", corpus)
    (corpus / "notes.docx").write_bytes(b"PK\x03\x04 not supported")
    out = run(["ingest", "--quiet"], make_settings(corpus=corpus))
    assert out.returncode == 0, out.stderr
    assert "1 documents" in out.stdout and "skipped" in out.stdout and "notes.docx" in out.stdout


def test_a_corrupt_index_is_set_aside_and_rebuilt(make_settings, tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    src = Path(__file__).resolve().parent.parent / "corpus"
    shutil.copy(src / "nhs-confederation-2023-scaling-innovation.txt", corpus)
    settings = make_settings(corpus=corpus)
    assert run(["ingest", "-q"], settings).returncode == 0
    db = settings.index_dir / "chroma.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    out = run(["ask", "What are the three core pillars?"], settings)
    assert "Traceback" not in out.stderr
    # the damaged database is kept aside for inspection, the index rebuilt, and the question answered
    assert out.returncode == 0, out.stderr
    assert "could not be opened" in out.stderr and "moved it to" in out.stderr
    assert list(settings.index_dir.parent.glob(f"{settings.index_dir.name}.damaged-*"))
    assert "three core pillars" in out.stdout


def test_a_terminal_sees_the_llm_draft_stream_then_the_verified_answer(built_advisor, built_settings):
    """On a terminal, an LLM's text is shown as it streams, then replaced by the checked answer."""
    import io

    from langchain_core.language_models import FakeListChatModel
    from rich.console import Console

    from advisor.advisor import build_advisor
    from advisor.cli import answer_live, render_answer
    from tests.conftest import INVENTED, fake_llm_advisor

    question = "How did RAID spread across hospitals?"
    advisor, settings, quote = fake_llm_advisor(built_advisor, built_settings, question)

    out = io.StringIO()
    terminal = Console(file=out, force_terminal=True, width=400, color_system=None)
    answer = answer_live(advisor, question, to=terminal)
    render_answer(answer, to=terminal)
    shown = out.getvalue()
    head = quote[:25]
    # the draft was drawn several times while it grew, then the final answer printed once more
    assert shown.count(head) >= 3, shown[:500]
    assert [s.verdict for s in answer.sentences] == ["supported", "unsupported"]
    assert f"(unsupported) {INVENTED}" in shown
    assert "Sources" in shown

    # not a terminal (a pipe, --json): no live view, the same answer
    piped = io.StringIO()
    quiet = Console(file=piped, force_terminal=False)
    model = FakeListChatModel(responses=[f"{quote} [1] {INVENTED} [1]."])
    advisor = build_advisor(settings, embedder=built_advisor.embedder, chat_model=model)
    assert answer_live(advisor, question, to=quiet).text == answer.text
    assert piped.getvalue() == ""


# ---- a damaged index (issue 16) ------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [["sources", "--json"], ["ask", "What are the three core pillars for adopting a proven innovation?"]],
    ids=["sources", "ask"],
)
def test_a_damaged_index_is_rebuilt_before_answering(built_advisor, built_settings, tmp_path, args):
    """The probe's damage (`truncate -s0 data/chroma/*/data_level0.bin`) crashed `ask` and
    `sources` with Chroma's InternalError; the embedded index is now rebuilt, saying why."""
    from tests.test_damaged_index import REPORT, damaged_index_settings

    settings = damaged_index_settings(built_settings, tmp_path)
    out = run(args, settings)
    assert "Traceback" not in out.stderr
    assert out.returncode == 0, out.stderr
    assert "is damaged" in out.stderr and "Rebuilding it from the corpus" in out.stderr
    assert "published a new index" in out.stderr
    if args[0] == "sources":
        assert [d["source"] for d in json.loads(out.stdout)] == [REPORT]
    else:
        assert "three core pillars" in out.stdout and "Sources" in out.stdout


def test_ingest_on_a_damaged_index_says_how_to_rebuild(built_advisor, built_settings, tmp_path):
    from tests.test_damaged_index import damaged_index_settings

    settings = damaged_index_settings(built_settings, tmp_path)
    out = run(["ingest", "-q"], settings)  # would copy the unchanged report's vectors: unreadable
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "is damaged" in out.stderr and "advisor ingest --rebuild" in out.stderr
    rebuilt = run(["ingest", "-q", "--rebuild"], settings)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "published a new index" in rebuilt.stdout


# ---- bytes that are not UTF-8 in a question (issue 16) -------------------------------------
def test_a_question_that_is_not_utf8_gets_a_message_not_a_traceback(make_settings):
    """On Linux, argv bytes that are not UTF-8 reach Python as surrogate escapes; the tokenizer
    raised TypeError on them. The question is refused, naming the bytes, before anything loads."""
    settings = make_settings()
    env = {**os.environ, "ADVISOR_DATA_DIR": str(settings.data_dir)}
    question = b"\xff\xfe bad"
    out = subprocess.run([ADVISOR, "ask", question], env=env, capture_output=True, timeout=120, check=False)
    stderr = out.stderr.decode("utf-8", "replace")
    assert out.returncode == 2 and "Traceback" not in stderr
    assert "Error:" in stderr and "not UTF-8" in stderr and "\\xff \\xfe" in stderr
    as_json = subprocess.run(
        [ADVISOR, "ask", question, "--json"], env=env, capture_output=True, timeout=120, check=False
    )
    assert as_json.returncode == 2 and b"Traceback" not in as_json.stderr
    record = json.loads(as_json.stdout)
    assert record["kind"] == "InvalidQuestionError" and "not UTF-8" in record["error"]
    assert not settings.index_dir.exists()  # refused before any index was opened
    like = subprocess.run(
        [ADVISOR, "cases", "--like", question, "--json"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert like.returncode == 2 and b"Traceback" not in like.stderr
    assert json.loads(like.stdout)["kind"] == "InvalidQuestionError"


# ---- --json always prints a JSON object (issue 16) -----------------------------------------
@pytest.mark.parametrize(
    "args, kind, needle",
    [
        (["ask", "", "--json"], "InvalidQuestionError", "empty"),
        (["ask", "   ", "--json"], "InvalidQuestionError", "empty"),
        (["cases", "--json", "--tag", "nonsense"], "CatalogueError", "FIELD=VALUE"),
        (["guidance", "--json", "--for", "nobody"], "GuidanceError", "unknown audience"),
    ],
)
def test_json_mode_prints_the_error_as_json_on_stdout(make_settings, args, kind, needle):
    out = run(args, make_settings(), timeout=120)
    assert out.returncode == 2, out.stderr
    record = json.loads(out.stdout)
    assert record["kind"] == kind and needle in record["error"]
    assert "Traceback" not in out.stderr


def test_json_mode_turns_an_unexpected_failure_into_json_and_logs_it(make_settings, tmp_path):
    """Not an advisor error (the data folder is a file, so Chroma's folder cannot be made): the
    traceback goes to the log on stderr, a JSON object to stdout, and the exit code is 1."""
    not_a_folder = tmp_path / "data-file"
    not_a_folder.write_text("not a folder")
    out = run(["sources", "--json"], make_settings(data_dir=not_a_folder))
    assert out.returncode == 1
    record = json.loads(out.stdout)
    assert record["kind"] == "NotADirectoryError" and "data-file" in record["error"]
    assert "Traceback" in out.stderr and "NotADirectoryError" in out.stderr  # logged for whoever debugs it
