"""Ctrl-C and SIGTERM that cannot be lost.

Python delivers a signal by raising in whatever frame runs when the handler
fires. If that frame is a weakref callback or a ``__del__`` (neo, NEST and
Brian2 create many), the ``KeyboardInterrupt`` is printed as "Exception ignored"
and swallowed, and the run would go on to the end. So the handler also records
the signal, and long loops call :func:`check` between simulation chunks: a
swallowed interrupt is raised again at the next chunk boundary.
"""

from __future__ import annotations

import signal

_received: int | None = None


def _handle(signum: int, frame: object) -> None:
    global _received
    _received = signum
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM through the recording handler (main thread only)."""
    global _received
    _received = None
    signal.signal(signal.SIGINT, _handle)
    signal.signal(signal.SIGTERM, _handle)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a signal arrived, even one swallowed earlier."""
    if _received is not None:
        raise KeyboardInterrupt
