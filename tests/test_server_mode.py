"""Server mode: a real `chroma run` server on loopback gives the same answers as embedded mode."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from advisor.advisor import build_advisor
from advisor.config import PROJECT_ROOT
from advisor.embedding import LocalEmbeddings
from tests import services

pytestmark = pytest.mark.chroma_server

DOCS = [
    "against-the-odds-2018-news-release.txt",
    "nhs-confederation-2023-scaling-innovation.txt",
    "hin-south-london-2025-technology-enabled-service-change.txt",
]
QUESTIONS = [
    "What are the three core pillars for adopting a proven innovation?",
    "How was ambient voice technology piloted in London?",
    "What did the Health Foundation call on system leaders to do?",
]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    with services.chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for name in [*DOCS, "manifest.yaml"]:
        shutil.copy(PROJECT_ROOT / "corpus" / name, folder / name)
    return folder


def test_server_mode_ingests_and_answers_like_embedded_mode(chroma_server, corpus, make_settings, tmp_path):
    embedder = LocalEmbeddings(make_settings().model_path())
    embedded = build_advisor(make_settings(corpus=corpus, data_dir=tmp_path / "embedded"), embedder=embedder)
    served = build_advisor(
        make_settings(corpus=corpus, data_dir=tmp_path / "served", chroma_url=chroma_server),
        embedder=embedder,
    )
    assert served.settings.server_mode and not (tmp_path / "served" / "chroma").exists()
    r1, r2 = embedded.ingest(), served.ingest()
    assert r1.chunks == r2.chunks and r2.published
    for question in QUESTIONS:
        a, b = embedded.ask(question), served.ask(question)
        assert a.text == b.text
        assert [p.chunk.id for p in a.passages] == [p.chunk.id for p in b.passages]

    # a second process (another replica) sees the same index through the server
    replica = build_advisor(
        make_settings(corpus=corpus, data_dir=tmp_path / "replica", chroma_url=chroma_server),
        embedder=embedder,
    )
    assert replica.ready
    assert replica.ask(QUESTIONS[0]).text == embedded.ask(QUESTIONS[0]).text
    assert not served.ingest().published  # unchanged corpus: nothing rewritten on the server
