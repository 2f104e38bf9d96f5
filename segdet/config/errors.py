"""The one exception type for bad configs."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A config file or command-line override is invalid.

    The message is complete and user-facing (it names the file, the key, the value and the fix);
    the CLI prints it without a traceback and exits with status 2.
    """
