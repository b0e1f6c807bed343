"""Fixtures of the guidance map's tests: the real map, read once."""

from __future__ import annotations

import pytest

from advisor.guidance import GUIDANCE_NAME, GuidanceMap, catalogue_case_names, load_guidance
from tests.conftest import CORPUS


@pytest.fixture(scope="module")
def case_names() -> dict[str, tuple[str, ...]]:
    return catalogue_case_names(CORPUS)


@pytest.fixture(scope="module")
def guidance_map(case_names) -> GuidanceMap:
    """The real corpus/guidance.yaml, validated against the real reports."""
    return load_guidance(CORPUS / GUIDANCE_NAME, CORPUS, case_names)
