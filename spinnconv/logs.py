"""Muting third-party chatter (NEST's banner, PyNN's and Brian2's warnings) for the
CLI, the Python API and the simulator worker processes."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries() -> None:
    """Hide the simulators' banners and deprecation noise (before they are imported)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=SyntaxWarning)
    warnings.filterwarnings("ignore", message=".*nest-config.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="nest")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"nest\..*")
    logging.getLogger("PyNN").setLevel(logging.ERROR)
    os.environ.setdefault("PYNEST_QUIET", "1")
