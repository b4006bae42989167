"""Exceptions that reach the user as one line on stderr and an exit code.

``UsageError`` (exit code 2) is for input the user can fix on the command line
(unknown names, bad values, modes run in the wrong order); ``RuntimeFailure``
(exit code 1) is for everything that fails while working (corrupt files, disk
full, a simulator that cannot be reached).
"""

from __future__ import annotations


class SpinnconvError(Exception):
    """Base class: ``str(error)`` is the one line the CLI prints."""

    exit_code = 1


class UsageError(SpinnconvError):
    """Bad input that the user can fix: exit code 2."""

    exit_code = 2


class RuntimeFailure(SpinnconvError):
    """A failure while working (I/O, data, simulator): exit code 1."""

    exit_code = 1


class DataError(RuntimeFailure):
    """Missing, truncated, corrupt or wrong-checksum dataset files."""


class BackendUnavailable(UsageError):
    """A simulator backend whose optional dependency is not installed."""


class CheckpointError(RuntimeFailure):
    """A model directory that cannot be read or written."""


class ModelDirDamaged(CheckpointError):
    """A model directory whose manifest or arrays fail their checks."""


class ModelDirBusy(CheckpointError):
    """A model directory another process is writing."""
