"""The case-study catalogue: corpus/case_studies.yaml -> `CaseCatalogue` -> answers across cases.

The reports' case studies, read by a person into a structured catalogue where every field value
carries the verbatim quote that supports it (see corpus/CASE_STUDIES.md). What is where:

- `model`: the fields and the data classes (`CaseStudy`, `Evidence`, `Term`, `CaseMatch`, `CaseQuery`).
- `schema`: pydantic models of the two YAML files; errors name the entry and the field.
- `loading`: reads the files through `schema` and checks every quote against its case study.
- `vocabulary`: the controlled vocabularies and reading tags from free text.
- `reading`: whether a question asks across cases (list, count, compare, "cases like mine").
- `ranking`: filtering by tags and "cases like mine".
- `compose`: cited catalogue answers, one row per case.
- `catalogue`: `CaseCatalogue` (filter, like, answer, quote anchors) and `CatalogueLoader`, which
  keeps the previous catalogue serving when a reload finds the files broken.
- `cli`: the `advisor cases` command.
"""

from advisor.cases.catalogue import CaseCatalogue, CatalogueLoader, IndexView, anchor_quotes
from advisor.cases.compose import NO_SIMILAR_CASE
from advisor.cases.loading import load_catalogue, load_vocabulary
from advisor.cases.model import (
    CATALOGUE_NAME,
    FIELD_LABELS,
    FIELDS,
    TAG_FIELDS,
    TEXT_FIELDS,
    VOCABULARY_NAME,
    CaseMatch,
    CaseQuery,
    CaseStudy,
    Evidence,
    Term,
)
from advisor.cases.ranking import LIKE_MARGIN, LIKE_WEIGHTS, MIN_LIKE_SCORE
from advisor.cases.vocabulary import Vocabulary
from advisor.errors import CatalogueError
from advisor.text import normalise_space

__all__ = [
    "CATALOGUE_NAME",
    "FIELDS",
    "FIELD_LABELS",
    "LIKE_MARGIN",
    "LIKE_WEIGHTS",
    "MIN_LIKE_SCORE",
    "NO_SIMILAR_CASE",
    "TAG_FIELDS",
    "TEXT_FIELDS",
    "VOCABULARY_NAME",
    "CaseCatalogue",
    "CaseMatch",
    "CaseQuery",
    "CaseStudy",
    "CatalogueError",
    "CatalogueLoader",
    "Evidence",
    "IndexView",
    "Term",
    "Vocabulary",
    "anchor_quotes",
    "load_catalogue",
    "load_vocabulary",
    "normalise_space",
]
