"""Incremental, failing and interrupted ingest against real Chroma with the real model."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advisor.advisor import build_advisor
from advisor.config import PROJECT_ROOT
from advisor.embedding import LocalEmbeddings
from advisor.store import ChromaStore

SMALL = ["against-the-odds-2018-news-release.txt", "nhs-confederation-2023-scaling-innovation.txt"]


@pytest.fixture(scope="module")
def embedder(built_settings):
    return LocalEmbeddings(built_settings.model_path())


@pytest.fixture
def small_corpus(tmp_path) -> Path:
    folder = tmp_path / "small-corpus"
    folder.mkdir()
    for name in SMALL:
        shutil.copy(PROJECT_ROOT / "corpus" / name, folder / name)
    shutil.copy(PROJECT_ROOT / "corpus" / "manifest.yaml", folder / "manifest.yaml")
    return folder


@pytest.fixture
def small_advisor(make_settings, small_corpus, embedder):
    return build_advisor(make_settings(corpus=small_corpus), embedder=embedder)


def _generations(store: ChromaStore) -> set[str]:
    return {n.rsplit("_", 1)[0] for n in store._collection_names() if "_g" in n and "__pointer" not in n}


def test_first_ingest_publishes_and_answers(small_advisor):
    report = small_advisor.ingest()
    assert report.published and sorted(report.added) == sorted(SMALL)
    assert report.chunks > 0 and report.sentences > report.chunks
    answer = small_advisor.ask("What are the three core pillars for adopting innovation?")
    assert not answer.refused
    assert answer.citations and answer.citations[0].passage.chunk.source == SMALL[1]
    assert "three core pillars" in answer.text


def test_unchanged_corpus_is_skipped_without_a_new_generation(small_advisor):
    first = small_advisor.ingest()
    second = small_advisor.ingest()
    assert not second.published and not second.changed
    assert sorted(second.unchanged) == sorted(SMALL)
    assert second.generation == first.generation
    assert small_advisor.store.state().generation == first.generation


def test_changed_document_is_replaced_and_others_keep_their_chunks(small_advisor, small_corpus):
    small_advisor.ingest()
    store = small_advisor.store
    before = {c.id: c for c in store.load_chunks(store.state())}
    untouched = {cid for cid, c in before.items() if c.source == SMALL[0]}

    path = small_corpus / SMALL[1]
    path.write_text(
        path.read_text(encoding="utf-8")
        + "\n\nA new closing paragraph about regional health innovation networks sharing "
        "learning across integrated care systems.\n",
        encoding="utf-8",
    )
    report = small_advisor.ingest()
    assert report.updated == [SMALL[1]] and report.unchanged == [SMALL[0]]
    after = {c.id: c for c in store.load_chunks(store.state())}
    assert untouched <= set(after)  # identical text keeps identical ids
    assert any("integrated care systems" in c.text for c in after.values() if c.source == SMALL[1])


def test_removed_document_is_deleted_from_the_index(small_advisor, small_corpus):
    small_advisor.ingest()
    (small_corpus / SMALL[0]).unlink()
    report = small_advisor.ingest()
    assert report.removed == [SMALL[0]]
    sources = {c.source for c in small_advisor.store.load_chunks(small_advisor.store.state())}
    assert sources == {SMALL[1]}


def test_bad_files_are_skipped_with_reasons_and_the_rest_ingested(small_advisor, small_corpus):
    (small_corpus / "empty.txt").write_text("   \n", encoding="utf-8")
    (small_corpus / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (small_corpus / "broken.pdf").write_bytes(b"%PDF-1.4\n this is not really a pdf")
    (small_corpus / "slides.pptx").write_bytes(b"PK\x03\x04")
    report = small_advisor.ingest()
    skipped = {Path(p).name: reason for p, reason in report.skipped}
    assert set(skipped) == {"empty.txt", "binary.txt", "broken.pdf", "slides.pptx"}
    assert all(reason.strip() for reason in skipped.values())
    assert sorted(report.added) == sorted(SMALL)


def test_a_file_that_turns_unreadable_keeps_its_previous_version(small_advisor, small_corpus):
    small_advisor.ingest()
    (small_corpus / SMALL[0]).write_bytes(b"\xff\xfe\x00garbage" * 100)
    report = small_advisor.ingest()
    assert report.kept_previous == [SMALL[0]]
    sources = {c.source for c in small_advisor.store.load_chunks(small_advisor.store.state())}
    assert SMALL[0] in sources


def test_failed_ingest_leaves_the_previous_index_serving(small_advisor, small_corpus, monkeypatch):
    first = small_advisor.ingest()
    question = "What are the three core pillars for adopting innovation?"
    before = small_advisor.ask(question).to_record()

    (small_corpus / "new-report.md").write_text(
        "# New report\n\nAdoption of proven innovations needs sustained funding and clinical "
        "leadership across the whole pathway.\n",
        encoding="utf-8",
    )

    def boom(*args, **kwargs):
        raise RuntimeError("embedding crashed half way")

    monkeypatch.setattr(small_advisor.ingestor.embedder, "encode", boom)
    with pytest.raises(RuntimeError):
        small_advisor.ingest()
    monkeypatch.undo()

    store = small_advisor.store
    assert store.state().generation == first.generation
    assert _generations(store) == {first.generation}  # the half-written one was abandoned
    after = small_advisor.ask(question).to_record()
    assert after["answer"] == before["answer"]


def test_killed_ingest_process_leaves_the_old_index_usable(make_settings, small_corpus, embedder):
    settings = make_settings(corpus=small_corpus)
    advisor = build_advisor(settings, embedder=embedder)
    first = advisor.ingest()
    good = advisor.ask("What are the three core pillars for adopting innovation?").text

    # The two long reports make the next ingest take many seconds of embedding: time to kill it.
    for name in ("nuffield-2020-achieving-scale-and-spread.txt", "against-the-odds-2018-report.txt"):
        shutil.copy(PROJECT_ROOT / "corpus" / name, small_corpus / name)
    env = {
        **os.environ,
        "ADVISOR_CORPUS_DIR": str(settings.corpus_dir),
        "ADVISOR_DATA_DIR": str(settings.data_dir),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "advisor", "ingest"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    seen = ""
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            seen += line
            if "Embedding passages" in line:
                time.sleep(1.0)  # let it write part of the new generation
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert "Embedding" in seen, seen

    again = build_advisor(settings, embedder=embedder)
    assert again.store.state().generation == first.generation
    assert again.ask("What are the three core pillars for adopting innovation?").text == good
    report = again.ingest()  # and the next ingest finishes the job and drops the orphan
    assert report.published and len(report.added) == 2
    assert _generations(again.store) <= {first.generation, report.generation}


def test_missing_corpus_path_is_a_clear_error(small_advisor, tmp_path):
    from advisor.errors import IngestError

    with pytest.raises(IngestError, match="No such file"):
        small_advisor.ingest([tmp_path / "nope"])


SECRET = "The private ledger records that swordfish is the vault password for the finance team."


def _outside_secret(tmp_path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text((SECRET + "\n\n") * 5, encoding="utf-8")
    return outside


def _indexed(advisor) -> list:
    return advisor.store.load_chunks(advisor.store.state())


def test_links_out_of_the_corpus_are_skipped_and_never_indexed(small_advisor, small_corpus, tmp_path):
    outside = _outside_secret(tmp_path)
    (small_corpus / "x.txt").symlink_to(outside / "secret.txt")
    (small_corpus / "shared").symlink_to(outside, target_is_directory=True)
    report = small_advisor.ingest()
    skipped = {Path(p).name: reason for p, reason in report.skipped}
    assert set(skipped) == {"x.txt", "shared"}
    assert all("leads outside the corpus folder" in reason for reason in skipped.values())
    assert sorted(report.added) == sorted(SMALL)
    assert not [c for c in _indexed(small_advisor) if "swordfish" in c.text]


def test_a_report_turned_into_a_link_out_is_removed_not_kept(small_advisor, small_corpus, tmp_path):
    small_advisor.ingest()
    outside = _outside_secret(tmp_path)
    (small_corpus / SMALL[0]).unlink()
    (small_corpus / SMALL[0]).symlink_to(outside / "secret.txt")
    report = small_advisor.ingest()
    assert [Path(p).name for p, _ in report.skipped] == [SMALL[0]]
    assert report.removed == [SMALL[0]] and report.kept_previous == []
    chunks = _indexed(small_advisor)
    assert {c.source for c in chunks} == {SMALL[1]}
    assert not [c for c in chunks if "swordfish" in c.text]


FILLER = "Regional networks shared what they learnt about remote monitoring across trusts. "  # 81 characters


def test_files_over_the_size_cap_are_skipped_and_the_rest_ingested(
    make_settings, small_corpus, embedder, monkeypatch
):
    advisor = build_advisor(make_settings(corpus=small_corpus, max_file_chars=10_000), embedder=embedder)
    # long.txt has fewer than 4 bytes a character of the cap, so it is read and counted;
    # huge.txt has more, so its size on disk alone rules it out
    (small_corpus / "long.txt").write_text(FILLER * 150, encoding="utf-8")
    (small_corpus / "huge.txt").write_text(FILLER * 600, encoding="utf-8")
    read: list[str] = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self.name) or read_bytes(self))
    report = advisor.ingest()
    monkeypatch.undo()
    skipped = {Path(p).name: reason for p, reason in report.skipped}
    assert set(skipped) == {"long.txt", "huge.txt"}
    assert "12,150 characters" in skipped["long.txt"]
    assert "48,600 bytes" in skipped["huge.txt"] and "huge.txt" not in read
    for reason in skipped.values():
        assert "10,000" in reason and "ADVISOR_MAX_FILE_CHARS" in reason
    assert sorted(report.added) == sorted(SMALL) and report.published
    assert not [c for c in _indexed(advisor) if "remote monitoring across trusts" in c.text]


def test_a_report_grown_over_the_cap_keeps_its_previous_version(make_settings, small_corpus, embedder):
    advisor = build_advisor(make_settings(corpus=small_corpus, max_file_chars=10_000), embedder=embedder)
    first = advisor.ingest()
    path = small_corpus / SMALL[0]
    path.write_text(path.read_text(encoding="utf-8") + FILLER * 60, encoding="utf-8")
    report = advisor.ingest()
    assert [Path(p).name for p, _ in report.skipped] == [SMALL[0]]
    assert "ADVISOR_MAX_FILE_CHARS" in report.skipped[0][1]
    assert report.kept_previous == [SMALL[0]] and not report.published
    assert advisor.store.state().generation == first.generation
    chunks = _indexed(advisor)
    assert {c.source for c in chunks} == set(SMALL)
    assert not [c for c in chunks if "remote monitoring across trusts" in c.text]


def _plain_progress(monkeypatch):
    """The CLI's progress callback as it behaves off a terminal, and what it printed."""
    from rich.console import Console

    from advisor.cli import common

    out = io.StringIO()
    monkeypatch.setattr(common, "err", Console(file=out, force_terminal=False, width=200))
    assert not common.err.is_terminal
    return common.progress_bar, out


# the first multiple of 256 past each tenth of 31,493 (the probe's chunk count)
FIRST_PAST_EACH_TENTH = (3328, 6400, 9472, 12800, 15872, 18944, 22272, 25344, 28416)


def test_progress_off_a_terminal_prints_a_line_every_tenth(monkeypatch):
    progress_bar, out = _plain_progress(monkeypatch)
    with progress_bar() as progress:
        progress("Reading reports", 0, 3)
        progress("Reading reports", 3, 3)
        progress("Embedding passages", 0, 31493)
        for done in range(256, 31493, 256):
            progress("Embedding passages", done, 31493)
        progress("Embedding passages", 31493, 31493)
    assert out.getvalue().splitlines() == [
        "Reading reports: 3 to do",
        "Reading reports: done (3)",
        "Embedding passages: 31493 to do",
        *(f"Embedding passages: {done}/31493 ({done * 100 // 31493}%)" for done in FIRST_PAST_EACH_TENTH),
        "Embedding passages: done (31493)",
    ]


def test_progress_off_a_terminal_also_prints_when_a_minute_passes(monkeypatch):
    progress_bar, out = _plain_progress(monkeypatch)
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    with progress_bar() as progress:
        progress("Embedding passages", 0, 1000)
        for done in (10, 20, 30):
            now[0] += 61
            progress("Embedding passages", done, 1000)
        progress("Embedding passages", 40, 1000)  # no time has passed: no line
    assert out.getvalue().splitlines() == [
        "Embedding passages: 1000 to do",
        "Embedding passages: 10/1000 (1%)",
        "Embedding passages: 20/1000 (2%)",
        "Embedding passages: 30/1000 (3%)",
    ]
