"""Ctrl-C and SIGTERM that cannot be lost.

Python delivers a signal by raising in whatever frame runs when the handler
fires. If that frame is a weakref callback or a ``__del__`` (neo, NEST and
Brian2 create many), the ``KeyboardInterrupt`` is printed as "Exception ignored"
and swallowed, and the run would go on to the end. So the handler also records
the signal, and long loops call :func:`check` between simulation chunks: a
swallowed interrupt is raised again at the next chunk boundary (and Python's
"Exception ignored" report of it is kept off stderr).
"""

from __future__ import annotations

import signal
import sys

_received: int | None = None


def _handle(signum: int, frame: object) -> None:
    global _received
    _received = signum
    raise KeyboardInterrupt


def _unraisable(unraisable) -> None:
    """Keep a swallowed interrupt off stderr (it is raised again at the next check);
    anything else goes to Python's default report."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt) and _received is not None:
        return
    sys.__unraisablehook__(unraisable)


def install() -> None:
    """Route SIGINT and SIGTERM through the recording handler (main thread only)."""
    global _received
    _received = None
    signal.signal(signal.SIGINT, _handle)
    signal.signal(signal.SIGTERM, _handle)
    sys.unraisablehook = _unraisable


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a signal arrived, even one swallowed earlier."""
    if _received is not None:
        raise KeyboardInterrupt
