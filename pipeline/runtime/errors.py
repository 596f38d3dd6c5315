"""Errors a user can act on.

Stages catch `PipelineError`, log its message (no traceback: the message already names what is
wrong and where) and exit with status 2. Anything else is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """Base for errors caused by the user's config, data or environment."""


class ConfigError(PipelineError):
    """The composed config is invalid; the message names the key path, value and rule."""


class DataError(PipelineError):
    """The data does not match its dataset spec; the message names the file, column and rule."""


class OutputError(PipelineError):
    """A stage cannot write its outputs (full disk, quota, read-only or forbidden place); the
    message names the path and the operating system's reason."""


class ModelRefused(PipelineError):
    """A model source refuses to hand out a version: its registry tags are not VALIDATED and
    promoted, or its stored bytes differ from the sha256 recorded at registration. Raised by
    `source.load()` before anything is unpickled; the message names the version and why."""
