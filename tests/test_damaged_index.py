"""A damaged index: real Chroma files damaged on disk are found on load, then rebuilt or reported.

Every test damages a copy of the session's index (never the index itself). The copies are
served with a one-report corpus so that a rebuild embeds one report, not the whole corpus.
`damaged_index_settings` and `chroma_server` are shared with the web page's and the Slack
bot's tests of the same damage.
"""

from __future__ import annotations

import logging
import shutil
import struct
from pathlib import Path

import pytest

from advisor import advisor as advisor_module
from advisor.advisor import build_advisor
from advisor.config import Settings
from advisor.errors import IndexDamagedError
from advisor.store import ChromaStore
from tests.conftest import CORPUS
from tests.services import chroma_server

REPORT = "nhs-confederation-2023-scaling-innovation.txt"
QUESTION = "What are the three core pillars for adopting a proven innovation?"
REBUILD = "`advisor ingest --rebuild`"


def one_report_corpus(folder: Path) -> Path:
    """A corpus of one report (with the manifest), so a rebuild takes seconds."""
    folder.mkdir(parents=True)
    for name in (REPORT, "manifest.yaml"):
        shutil.copy(CORPUS / name, folder / name)
    return folder


def copy_index(source: Settings, data_dir: Path) -> Path:
    """A copy of an embedded index's Chroma folder under `data_dir`; returns the copy's folder."""
    target = data_dir / "chroma"
    shutil.copytree(source.index_dir, target)
    return target


def damage(index_dir: Path, file: str = "data_level0.bin") -> list[Path]:
    """Empty one HNSW file of every segment, as `truncate -s0 data/chroma/*/data_level0.bin` does."""
    damaged = sorted(index_dir.glob(f"*/{file}"))
    assert damaged, f"no {file} under {index_dir}"
    for path in damaged:
        path.write_bytes(b"")
    return damaged


def damaged_index_settings(built_settings: Settings, tmp_path: Path, **overrides) -> Settings:
    """Settings over an emptied-vector-files copy of the session index and a one-report corpus."""
    data_dir = tmp_path / "damaged-data"
    damage(copy_index(built_settings, data_dir))
    corpus = one_report_corpus(tmp_path / "one-report")
    return Settings(corpus_dir=corpus, data_dir=data_dir, _env_file=None, **overrides)


@pytest.fixture
def damaged(built_advisor, built_settings, tmp_path) -> Settings:
    return damaged_index_settings(built_settings, tmp_path)


# ---- found on load ---------------------------------------------------------------------
def test_loading_a_damaged_index_says_what_is_damaged_and_how_to_rebuild(damaged, built_advisor):
    generation = ChromaStore(damaged).state().generation
    advisor = build_advisor(damaged, load=False, embedder=built_advisor.embedder)
    with pytest.raises(IndexDamagedError) as caught:
        advisor.load()
    message = str(caught.value)
    assert str(damaged.index_dir) in message and repr(generation) in message
    assert "sentence vectors" in message and REBUILD in message
    assert not advisor.ready


def test_vectors_read_back_at_the_wrong_length_are_damage(built_advisor, built_settings, tmp_path):
    """Chroma keeps each vector's length beside it (length.bin) and scales what it reads back by it:
    with those lengths overwritten, every read succeeds and the vectors come back twice as long."""
    data_dir = tmp_path / "data"
    index_dir = copy_index(built_settings, data_dir)
    [lengths] = [p for p in index_dir.glob("*/length.bin") if (p.parent / "index_metadata.pickle").exists()]
    n = lengths.stat().st_size // 4
    lengths.write_bytes(struct.pack(f"<{n}f", *([2.0] * n)))
    settings = Settings(corpus_dir=CORPUS, data_dir=data_dir, _env_file=None)
    advisor = build_advisor(settings, load=False, embedder=built_advisor.embedder)
    with pytest.raises(
        IndexDamagedError, match=r"\d+ of \d+ sentence vectors are not unit vectors"
    ) as caught:
        advisor.load()
    assert REBUILD in str(caught.value)


def test_a_published_generation_whose_collections_are_gone_is_damage(damaged, built_advisor):
    store = ChromaStore(damaged)
    state = store.state()
    store.publish(
        "advisor_g1", state.signature, state.docs, state.encoder
    )  # the pointer names collections never written
    advisor = build_advisor(damaged, load=False, embedder=built_advisor.embedder)
    with pytest.raises(IndexDamagedError, match="advisor_g1") as caught:
        advisor.load()
    assert REBUILD in str(caught.value)


# ---- met at question time ----------------------------------------------------------------
def test_a_question_to_a_damaged_index_gets_the_message(damaged, built_advisor, caplog):
    with caplog.at_level(logging.WARNING, logger="advisor.advisor"):
        advisor = build_advisor(damaged, embedder=built_advisor.embedder)  # the damage is logged, not raised
    assert not advisor.ready and "damaged" in caplog.text
    with pytest.raises(IndexDamagedError, match="ingest --rebuild"):
        advisor.ask(QUESTION)


def test_a_damaged_generation_published_while_serving_leaves_the_loaded_one_answering(
    built_advisor, built_settings, tmp_path, monkeypatch, caplog
):
    data_dir = tmp_path / "data"
    copy_index(built_settings, data_dir)
    settings = Settings(corpus_dir=CORPUS, data_dir=data_dir, _env_file=None)
    advisor = build_advisor(settings, embedder=built_advisor.embedder)
    served = advisor.index.generation
    state = advisor.store.state()
    # another process publishes a generation this one cannot read
    advisor.store.publish("advisor_g1", state.signature, state.docs, state.encoder)
    monkeypatch.setattr(advisor_module, "_FRESHNESS_SECONDS", 0.0)
    with caplog.at_level(logging.WARNING, logger="advisor.advisor"):
        first = advisor.ask(QUESTION)
        second = advisor.ask(QUESTION)
    assert first.citations and second.text == first.text
    assert advisor.index.generation == served
    damage_logged = [r for r in caplog.records if "advisor_g1" in r.getMessage()]
    assert len(damage_logged) == 1  # tried once, not on every question
    assert served in damage_logged[0].getMessage()


# ---- rebuilt (embedded) or reported (Chroma server) --------------------------------------
def test_ensure_index_rebuilds_a_damaged_embedded_index(damaged, built_advisor):
    damaged_generation = ChromaStore(damaged).state().generation
    advisor = build_advisor(damaged, embedder=built_advisor.embedder)
    report = advisor.ensure_index()
    assert report is not None and report.published and report.updated == [REPORT] and report.documents == 1
    assert advisor.ready and advisor.index.generation not in ("", damaged_generation)
    answer = advisor.ask(QUESTION)
    assert answer.citations and "three core pillars" in answer.text
    # the damaged generation is kept beside the new one (the next ingest drops it)
    names = advisor.store._collection_names()
    assert f"{damaged_generation}_sentences" in names


@pytest.mark.chroma_server
def test_a_damaged_index_on_a_chroma_server_is_reported_not_rebuilt(built_advisor, built_settings, tmp_path):
    index_dir = copy_index(built_settings, tmp_path / "server-data")
    # an emptied header, not an emptied data_level0.bin: Chroma refuses to open such a segment,
    # while reading a cut-short data file is undefined (the server process may die of it)
    damage(index_dir, "header.bin")
    with chroma_server(index_dir) as url:
        settings = Settings(
            corpus_dir=one_report_corpus(tmp_path / "one-report"),
            data_dir=tmp_path / "client-data",
            chroma_url=url,
            _env_file=None,
        )
        advisor = build_advisor(settings, embedder=built_advisor.embedder)
        generation = advisor.store.state().generation
        with pytest.raises(IndexDamagedError) as caught:
            advisor.ensure_index()
        message = str(caught.value)
        assert url in message and REBUILD in message
        assert not advisor.ready and advisor.store.state().generation == generation  # nothing rebuilt
