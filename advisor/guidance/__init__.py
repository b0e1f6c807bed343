"""The guidance map: corpus/guidance.yaml -> `GuidanceMap` -> what the reports advise, by theme.

The reports' advice, read by people into themes; every point is a verbatim quote with its
report, section and line (see corpus/GUIDANCE.md). What is where:

- `model`: `GuidancePoint`, `Theme`, `GuidanceMap` (filtering by audience, stage, theme),
  `AUDIENCES`, `STAGES`.
- `schema`: the pydantic model of the YAML file; errors name the theme and point.
- `outline`: where a section of a report is (its heading path, read upward from a line).
- `loading`: `load_guidance`, every quote checked inside its section, every case against the
  catalogue; all problems in one `GuidanceError`.
- `holder`: `Guidance`, which keeps the last good map serving when a reload fails.
- `coverage`: which advice paragraphs of the reports no point quotes
  (`python -m advisor.guidance.coverage`).
- `cli`: the `advisor guidance` command.
"""

from advisor.errors import GuidanceError
from advisor.guidance.holder import Guidance
from advisor.guidance.loading import catalogue_case_names, load_guidance
from advisor.guidance.model import AUDIENCES, GUIDANCE_NAME, STAGES, GuidanceMap, GuidancePoint, Theme

__all__ = [
    "AUDIENCES",
    "GUIDANCE_NAME",
    "STAGES",
    "Guidance",
    "GuidanceError",
    "GuidanceMap",
    "GuidancePoint",
    "Theme",
    "catalogue_case_names",
    "load_guidance",
]
