"""Vectors of fixed texts kept on disk (advisor.vector_cache) and the C YAML loader."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from advisor.cases.ranking import CaseSimilarity
from advisor.guidance.matching import GuidanceMatcher
from advisor.vector_cache import FOLDER, cached_encode
from advisor.yamlfile import SafeLoader, safe_load

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


class CountingEmbedder:
    """Deterministic unit vectors from each text's hash; counts the texts it encodes."""

    def __init__(self, identity: str | None = "onnx:0123456789abcdef") -> None:
        if identity is not None:
            self.encoder_identity = identity
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows)


TEXTS = ["a point", "its quote", "a theme. Its statement"]


def files(tmp_path: Path, name: str = "guidance") -> list[Path]:
    return sorted((tmp_path / FOLDER).glob(f"{name}-*.npy"))


def test_vectors_are_written_once_and_then_read_without_encoding(tmp_path):
    first = CountingEmbedder()
    vectors = cached_encode(first, TEXTS, tmp_path, "guidance")
    assert len(first.calls) == 1 and len(files(tmp_path)) == 1
    assert not list((tmp_path / FOLDER).glob("*.tmp")) and not list((tmp_path / FOLDER).glob(".*"))
    (kept,) = files(tmp_path)
    assert kept.stat().st_mode & 0o777 == (tmp_path / FOLDER).stat().st_mode & 0o666  # not mkstemp's 0600
    again = CountingEmbedder()  # a new process: same encoder identity, same texts
    assert np.array_equal(cached_encode(again, TEXTS, tmp_path, "guidance"), vectors)
    assert again.calls == []


@pytest.mark.parametrize(
    "identity, texts",
    [("torch:0123456789abcdef", TEXTS), ("onnx:0123456789abcdef", [*TEXTS[:2], "a theme, reworded"])],
)
def test_another_encoder_or_changed_texts_encode_again_and_replace_the_file(tmp_path, identity, texts):
    cached_encode(CountingEmbedder(), TEXTS, tmp_path, "guidance")
    old = files(tmp_path)
    other = CountingEmbedder(identity)
    vectors = cached_encode(other, texts, tmp_path, "guidance")
    assert other.calls == [texts] and np.array_equal(vectors, CountingEmbedder().encode(texts))
    new = files(tmp_path)
    assert len(new) == 1 and new != old  # the stale file is gone
    reread = CountingEmbedder(identity)
    cached_encode(reread, texts, tmp_path, "guidance")
    assert reread.calls == []


def test_other_names_are_left_alone(tmp_path):
    cached_encode(CountingEmbedder(), TEXTS, tmp_path, "guidance")
    cached_encode(CountingEmbedder(), TEXTS[:1], tmp_path, "case-values")
    cached_encode(CountingEmbedder(), TEXTS[1:], tmp_path, "guidance")
    assert len(files(tmp_path, "guidance")) == 1 and len(files(tmp_path, "case-values")) == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"not a numpy file"),
        lambda p: p.write_bytes(p.read_bytes()[:60]),  # truncated
        lambda p: np.save(p, np.zeros((2, 8), dtype=np.float32)),  # wrong number of rows
        lambda p: np.save(p, np.array(["a", "b", "c"], dtype=object), allow_pickle=True),  # a pickle
    ],
)
def test_a_corrupt_file_is_logged_ignored_and_rewritten(tmp_path, caplog, damage):
    vectors = cached_encode(CountingEmbedder(), TEXTS, tmp_path, "guidance")
    (path,) = files(tmp_path)
    damage(path)
    embedder = CountingEmbedder()
    with caplog.at_level(logging.WARNING, logger="advisor.vector_cache"):
        assert np.array_equal(cached_encode(embedder, TEXTS, tmp_path, "guidance"), vectors)
    assert len(embedder.calls) == 1 and "ignoring" in caplog.text
    after = CountingEmbedder()
    assert np.array_equal(cached_encode(after, TEXTS, tmp_path, "guidance"), vectors) and after.calls == []


def test_without_a_folder_or_an_encoder_identity_nothing_is_cached(tmp_path):
    for embedder, folder in ((CountingEmbedder(), None), (CountingEmbedder(identity=None), tmp_path)):
        cached_encode(embedder, TEXTS, folder, "guidance")
        cached_encode(embedder, TEXTS, folder, "guidance")
        assert len(embedder.calls) == 2
    assert not (tmp_path / FOLDER).exists()


def test_an_unwritable_folder_still_answers(tmp_path, caplog):
    (tmp_path / FOLDER).write_text("a file where the folder should be")
    embedder = CountingEmbedder()
    with caplog.at_level(logging.WARNING, logger="advisor.vector_cache"):
        assert len(cached_encode(embedder, TEXTS, tmp_path, "guidance")) == 3
    assert "could not cache" in caplog.text


def small_map() -> SimpleNamespace:
    def theme(n: int) -> SimpleNamespace:
        points = [SimpleNamespace(point=f"point {n}.{i}", quote=f"quote {n}.{i}") for i in range(2)]
        return SimpleNamespace(
            id=f"t{n}", title=f"Theme {n}", statement=f"statement {n}", synonyms=[f"syn {n}"], points=points
        )

    return SimpleNamespace(themes=[theme(0), theme(1)])


def test_the_guidance_matcher_reads_its_vectors_from_the_data_folder(tmp_path):
    first = CountingEmbedder()
    GuidanceMatcher(small_map(), first, tmp_path)._ensure()
    assert len(first.calls) == 1 and len(files(tmp_path, "guidance")) == 1
    second = CountingEmbedder()
    matcher = GuidanceMatcher(small_map(), second, tmp_path)
    matcher._ensure()
    assert second.calls == []
    fresh = GuidanceMatcher(small_map(), CountingEmbedder())  # no folder: encoded, same vectors
    fresh._ensure()
    assert np.array_equal(matcher._point_vectors, fresh._point_vectors)
    assert np.array_equal(matcher._side_vectors, fresh._side_vectors)


def test_the_case_profiles_are_read_from_the_data_folder(tmp_path):
    cases = [SimpleNamespace(name=f"Case {i}", description=f"about {i}", tags={}) for i in range(3)]
    first = CountingEmbedder()
    CaseSimilarity(cases, first, tmp_path)("a question", cases)
    second = CountingEmbedder()
    scores = CaseSimilarity(cases, second, tmp_path)("a question", cases)
    assert second.calls == [["a question"]]  # the question only, not the profiles
    assert np.allclose(scores, CaseSimilarity(cases, CountingEmbedder())("a question", cases))


@pytest.mark.parametrize("name", ["guidance.yaml", "case_studies.yaml", "manifest.yaml"])
def test_the_c_loader_reads_the_same_data_as_the_python_one(name):
    text = (CORPUS / name).read_text(encoding="utf-8")
    assert safe_load(text) == yaml.safe_load(text)


def test_the_c_loader_is_used_where_libyaml_is_built_in_and_refuses_bad_yaml_alike():
    assert SafeLoader is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)
    with pytest.raises(yaml.YAMLError):
        safe_load("a: [unclosed")
    with pytest.raises(yaml.YAMLError):  # still a safe loader: no Python objects
        safe_load("!!python/object/apply:os.system ['true']")


@pytest.mark.model
@pytest.mark.slow
def test_an_ingest_leaves_the_vectors_the_first_question_needs(built_advisor, built_settings):
    """The session index was built by `ensure_index` -> ingest: the guidance map's, the case
    profiles' and the case vocabulary's vectors are kept, so no first question embeds them."""
    kept = sorted(p.name.rsplit("-", 1)[0] for p in (built_settings.data_dir / FOLDER).glob("*.npy"))
    assert kept == ["case-profiles", "case-values", "guidance"]
