"""Fixtures of the case-study catalogue's tests: the catalogue read from the real corpus."""

from __future__ import annotations

import pytest

from advisor.cases import CaseCatalogue
from tests.conftest import CORPUS


@pytest.fixture(scope="module")
def catalogue() -> CaseCatalogue:
    """The real catalogue without an embedder (tags only): for what needs no model."""
    return CaseCatalogue.load(CORPUS)


@pytest.fixture(scope="module")
def advisor_catalogue(built_advisor) -> CaseCatalogue:
    """The catalogue the shared advisor serves, with its embedder (ranking by meaning)."""
    catalogue = built_advisor.case_catalogue.current
    assert catalogue is not None, built_advisor.case_catalogue.error
    return catalogue
