"""User-facing errors: the CLI prints them as one line, without a traceback."""

from __future__ import annotations


class NexnetError(Exception):
    """A problem with the user's input (a file, a folder, a flag) that the user can fix."""


class DataError(NexnetError):
    """A data file or folder that cannot be used; the message starts with its path."""
