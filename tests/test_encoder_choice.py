"""ADVISOR_ENCODER: one factory builds the encoder, the index records which encoder built it,
another encoder's index is refused (or re-embedded by ingest), and `advisor ask` on ONNX
never imports torch (issue 18)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from advisor.advisor import build_advisor
from advisor.cli.common import print_ingest_summary
from advisor.config import PROJECT_ROOT
from advisor.embedding import LocalEmbeddings, make_embeddings
from advisor.errors import IndexDamagedError, IndexEncoderMismatchError
from advisor.onnx_encoder import OnnxEmbeddings, model_hash
from advisor.store import ChromaStore, IndexState

HEAVY = ("torch", "transformers", "sentence_transformers")
SMALL = ["against-the-odds-2018-news-release.txt", "nhs-confederation-2023-scaling-innovation.txt"]


def _hash(settings) -> str:
    return model_hash(settings.model_path())[:16]


def test_the_factory_builds_the_configured_encoder_without_loading_it(make_settings, tmp_path):
    settings = make_settings(encoder_cache_dir=None)
    assert settings.encoder == "onnx"  # the default
    onnx = make_embeddings(settings)
    assert isinstance(onnx, OnnxEmbeddings) and onnx._session is None
    assert onnx.cache_dir == settings.data_dir  # the export is cached in the data folder
    elsewhere = make_embeddings(make_settings(encoder_cache_dir=tmp_path / "exports"))
    assert elsewhere.cache_dir == tmp_path / "exports"  # ... unless ADVISOR_ENCODER_CACHE_DIR says
    torch = make_embeddings(make_settings(encoder="torch"))
    assert isinstance(torch, LocalEmbeddings) and torch._model is None


def test_the_encoder_identity_names_the_runtime_and_the_model(make_settings):
    settings = make_settings()
    digest = _hash(settings)
    assert make_embeddings(make_settings(encoder="onnx")).encoder_identity == f"onnx:{digest}"
    assert make_embeddings(make_settings(encoder="torch")).encoder_identity == f"torch:{digest}"


def test_an_index_matches_only_its_own_encoder():
    onnx = IndexState("g", "s", encoder="onnx:abc")
    assert onnx.encoder_matches("onnx:abc")
    assert not onnx.encoder_matches("torch:abc")  # same vectors to 1e-7, still never mixed
    assert not onnx.encoder_matches("onnx:def")  # another model
    legacy = IndexState("g", "s")  # built before encoders were recorded: only torch built those
    assert legacy.encoder_matches("torch:abc") and not legacy.encoder_matches("onnx:abc")


def test_the_pointer_records_the_encoder(make_settings):
    store = ChromaStore(make_settings())
    store.publish("advisor_g1", "sig", {}, "onnx:0123456789abcdef")
    assert store.state().encoder == "onnx:0123456789abcdef"


def test_another_encoders_index_is_refused_with_what_to_do(make_settings):
    settings = make_settings(encoder="onnx")
    ChromaStore(settings).publish("advisor_g1", "sig", {}, f"torch:{_hash(settings)}")
    advisor = build_advisor(settings, load=False)
    with pytest.raises(IndexEncoderMismatchError) as caught:
        advisor.load()
    message = str(caught.value)
    assert f"built with the encoder torch:{_hash(settings)}" in message
    assert f"encodes with onnx:{_hash(settings)} (ADVISOR_ENCODER=onnx)" in message
    assert "never mixed" in message and "Run `advisor ingest`" in message
    # handled as a damaged index: the CLI and the web page rebuild it, a Chroma server says so
    assert isinstance(caught.value, IndexDamagedError)


# ---- with the model: a real ONNX index over two reports ------------------------------------
@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small-corpus")
    for name in SMALL:
        shutil.copy(PROJECT_ROOT / "corpus" / name, folder / name)
    shutil.copy(PROJECT_ROOT / "corpus" / "manifest.yaml", folder / "manifest.yaml")
    return folder


@pytest.fixture(scope="module")
def onnx_index(tmp_path_factory, small_corpus):
    """An index of the two reports built with the ONNX encoder (its export cached beside it)."""
    from advisor.config import Settings

    data_dir = tmp_path_factory.mktemp("onnx-data")
    settings = Settings(
        corpus_dir=small_corpus, data_dir=data_dir, encoder="onnx", encoder_cache_dir=None, _env_file=None
    )
    advisor = build_advisor(settings, load=False)
    report = advisor.ingest()
    assert report.published
    return settings, advisor


@pytest.mark.model
@pytest.mark.slow
def test_ingest_records_the_encoder_and_re_embeds_for_another(onnx_index, make_settings, small_corpus):
    settings, advisor = onnx_index
    assert advisor.store.state().encoder == f"onnx:{_hash(settings)}"
    # the same corpus, another encoder: everything is embedded again, not copied over
    copy = make_settings(corpus=small_corpus, encoder="onnx")
    shutil.copytree(settings.data_dir, copy.data_dir)

    class OtherOnnx(OnnxEmbeddings):
        kind = "onnx-other"

    other = OtherOnnx(copy.model_path(), cache_dir=copy.data_dir)
    again = build_advisor(copy, load=False, embedder=other)
    with pytest.raises(IndexEncoderMismatchError):
        again.load()
    report = again.ingest()
    assert report.published and report.embedded_chunks == report.chunks > 0
    assert again.store.state().encoder == other.encoder_identity
    assert not again.ask("What are the three core pillars for adopting innovation?").refused
    # the summary says why everything was embedded again; the next ingest has nothing to say
    said = Console(record=True, width=200)
    print_ingest_summary(report, to=said)
    assert (
        f"embedded everything again: the index was built with the encoder onnx:{_hash(settings)}; "
        f"this advisor encodes with {other.encoder_identity}"
    ) in said.export_text()
    unchanged = again.ingest()
    assert not unchanged.published and unchanged.re_embedded_because == "" and unchanged.embedded_chunks == 0


@pytest.mark.model
@pytest.mark.slow
def test_advisor_ask_on_onnx_loads_no_torch(onnx_index):
    settings, _ = onnx_index
    question = "What are the three core pillars for adopting innovation?"
    script = textwrap.dedent(
        f"""
        import io, json, sys
        from contextlib import redirect_stdout
        from advisor.cli import app
        out = io.StringIO()
        with redirect_stdout(out):
            try:
                app(["ask", "--json", {question!r}])
            except SystemExit as exit:
                code = exit.code
            else:
                code = 0
        loaded = [m for m in {HEAVY!r} if m in sys.modules]
        print(json.dumps({{"code": code, "loaded": loaded, "answer": out.getvalue()}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADVISOR_", "SLACK_"))}
    env.update(
        PYTHONPATH=str(PROJECT_ROOT),
        ADVISOR_ENCODER="onnx",
        ADVISOR_DATA_DIR=str(settings.data_dir),
        ADVISOR_CORPUS_DIR=str(settings.corpus_dir),
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=settings.data_dir,  # no .env
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, (report, result.stderr)
    assert report["loaded"] == []
    answer = json.loads(report["answer"])
    assert "three core pillars" in json.dumps(answer)
