"""Shared fixtures: offline switches, fresh state per test, and one real index per session.

Building the real index (real corpus, real embedding model, real Chroma) takes a while on
two cores, so it is built once per session into a temporary folder and shared read-only by
every test that only asks questions. Tests that write to an index build their own.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from advisor.config import PROJECT_ROOT, Settings, force_offline

force_offline()

CORPUS = PROJECT_ROOT / "corpus"
OUTPUT = PROJECT_ROOT / "test-output"


# Fixtures that load the embedding model (directly or through an advisor). A test that uses one
# is marked `model`; `make test-fast` runs the rest (no model load, no browser, no servers).
MODEL_FIXTURES = frozenset(
    {"built_advisor", "built_settings", "session_data_dir", "embedder", "small_advisor"}
)


POSTGRES_FIXTURES = frozenset({"postgres_url", "fresh_postgres"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if MODEL_FIXTURES & fixtures:
            item.add_marker(pytest.mark.model)
        if POSTGRES_FIXTURES & fixtures:
            item.add_marker(pytest.mark.postgres)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def encoder_cache_dir(tmp_path_factory) -> Path:
    """One ONNX export of the model for the whole session (each test's data dir would make its own)."""
    return tmp_path_factory.mktemp("encoder-cache")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path, encoder_cache_dir):
    """No test reads the developer's .env or ADVISOR_* variables, or writes outside tmp."""
    for key in list(os.environ):
        if key.startswith(("ADVISOR_", "SLACK_")):
            monkeypatch.delenv(key, raising=False)
    # Settings() and the processes tests start read it; tests/test_onnx_encoder.py and
    # tests/test_encoder_choice.py check the export under the data dir itself.
    monkeypatch.setenv("ADVISOR_ENCODER_CACHE_DIR", str(encoder_cache_dir))
    monkeypatch.chdir(tmp_path)  # so a stray .env in the project is not read


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("advisor-data")


@pytest.fixture(scope="session")
def built_settings(session_data_dir, encoder_cache_dir) -> Settings:
    """Settings for the session's shared index over the real corpus."""
    return Settings(
        corpus_dir=CORPUS, data_dir=session_data_dir, encoder_cache_dir=encoder_cache_dir, _env_file=None
    )


@pytest.fixture(scope="session")
def built_advisor(built_settings):
    """An `Advisor` over the real corpus with the real model and embedded Chroma (read-only)."""
    from advisor.advisor import build_advisor

    advisor = build_advisor(built_settings)
    advisor.ensure_index()
    assert advisor.ready
    return advisor


@pytest.fixture
def make_settings(tmp_path):
    """Build Settings for a fresh data dir (and optionally a corpus copy) inside tmp_path."""

    def factory(corpus: Path | None = None, **overrides) -> Settings:
        data_dir = overrides.pop("data_dir", tmp_path / "data")
        return Settings(corpus_dir=corpus or CORPUS, data_dir=data_dir, _env_file=None, **overrides)

    return factory


@pytest.fixture
def corpus_copy(tmp_path) -> Path:
    """A writable copy of the real corpus."""
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target


@pytest.fixture
def output_dir(request) -> Path:
    """A folder under test-output/ named after the test, for screenshots and reports."""
    path = OUTPUT / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path


INVENTED = "The moon is made of green cheese"


def fake_llm_advisor(built_advisor, built_settings, question: str, sleep: float | None = 0.01):
    """An advisor on the shared index whose LLM is LangChain's `FakeListChatModel`.

    Its reply is a real quote of the top passage for `question`, cited [1] (supported), then
    INVENTED, also cited [1] (unsupported); it streams character by character. Returns
    (advisor, settings, quote).
    """
    from langchain_core.language_models import FakeListChatModel

    from advisor.advisor import build_advisor

    passages = built_advisor.retriever.retrieve(question)
    index = built_advisor.extractive.sentences
    quote = index.texts[index.by_chunk[passages[0].chunk.id][0]]
    settings = built_settings.model_copy(
        update={"llm_backend": "openai", "llm_base_url": "http://127.0.0.1:9/v1", "llm_condense": False}
    )
    model = FakeListChatModel(responses=[f"{quote} [1] {INVENTED} [1]."], sleep=sleep)
    advisor = build_advisor(settings, embedder=built_advisor.embedder, chat_model=model)
    return advisor, settings, quote


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL on loopback for the session (Debian's initdb and pg_ctl in a temp folder)."""
    from tests.services import postgres_missing, postgres_server

    missing = postgres_missing()
    if missing:
        pytest.fail(f"PostgreSQL is needed for this test: {missing}")
    with postgres_server() as url:
        yield url


@pytest.fixture
def fresh_postgres(postgres_url):
    """A new, empty database in the session's PostgreSQL; its URL (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    from tests.services import new_database

    url = new_database(postgres_url, "t")
    yield url
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()
