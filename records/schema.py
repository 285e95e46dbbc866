"""The one schema version of the records this package writes, and what a reader accepts."""

from __future__ import annotations

SCHEMA_VERSION = 1
# Run records without `schema_version` come from before the field existed: read as version 1.
SUPPORTED_SCHEMAS = (1,)


class RecordError(ValueError):
    """A record file that cannot be used; the message names the file and what is wrong."""

    def __init__(self, message: str, problem: str | None = None):
        super().__init__(message)
        self.problem = problem or message  # what is wrong, without the file's name
