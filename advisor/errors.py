"""The few errors the advisor raises; front ends catch them at the edge and show the message."""


class AdvisorError(Exception):
    """Base class: the message is written for the person using the advisor."""


class InvalidQuestionError(AdvisorError):
    """The question is empty, too long or not text a person would type."""


class IndexMissingError(AdvisorError):
    """No index has been built yet (run `advisor ingest`)."""


class IndexDamagedError(AdvisorError):
    """The index's files are damaged or unreadable; the message says how to rebuild it."""


class IndexEncoderMismatchError(IndexDamagedError):
    """The index was embedded by another encoder (ADVISOR_ENCODER or the model changed): unusable
    with this one, so it is handled as a damaged index (rebuilt from the corpus where the advisor
    may, else the message says to run `advisor ingest`)."""


class IngestError(AdvisorError):
    """The corpus could not be ingested; the previous index keeps serving."""


class ConfigError(AdvisorError):
    """A setting is missing or invalid; the message names the variable."""


class UnreadableFileError(AdvisorError):
    """A file could not be read as a report; the message says why."""


class CatalogueError(AdvisorError):
    """The case-study catalogue is malformed or does not match the reports; the message names the entry and field."""


class GuidanceError(AdvisorError):
    """The guidance map is malformed or does not match the reports; the message names the theme and point."""
