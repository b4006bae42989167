"""Muting third-party chatter (NEST's banner, PyNN's and Brian2's warnings) for the
CLI, the Python API and the simulator worker processes."""

from __future__ import annotations

import logging
import os
import sys
import warnings


class LibraryLog(logging.Handler):
    """Keeps third-party log records (sPyNNaker, NEST, PyNN) for the run log, off stderr."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.extend(self.format(record).splitlines())
        except (TypeError, ValueError):  # a malformed record must not break the run
            self.handleError(record)


#: the CLI's capture of third-party log records, appended to the run log
library_log = LibraryLog()


def program_name(argv0: str | None = None) -> str:
    """The command that started the CLI, as the user typed it: ``python main.py`` for
    a script (``sys.argv[0]`` as given), else ``spinnconv`` (the console script, or
    :func:`spinnconv.cli.main` called from Python)."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if argv0.endswith(".py") and os.path.basename(argv0) == "main.py":
        return f"python {argv0}"
    return "spinnconv"


def quiet_libraries(capture_logs: bool = False) -> None:
    """Hide the simulators' banners and deprecation noise (before they are imported);
    with ``capture_logs`` their log records go to :data:`library_log`, off stderr."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=SyntaxWarning)
    warnings.filterwarnings("ignore", message=".*nest-config.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="nest")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"nest\..*")
    logging.getLogger("PyNN").setLevel(logging.ERROR)
    os.environ.setdefault("PYNEST_QUIET", "1")
    root = logging.getLogger()
    if capture_logs and library_log not in root.handlers:
        # a root handler also stops sPyNNaker's logging.basicConfig() adding one on stderr
        for handler in list(root.handlers):
            if isinstance(handler, logging.StreamHandler) and \
                    getattr(handler, "stream", None) in (sys.stderr, sys.__stderr__):
                root.removeHandler(handler)
        root.addHandler(library_log)
