"""NEST through ``pyNN.nest``: :mod:`.backend` (:class:`NestBackend`) and :mod:`.fromlist`
(the vectorised connection-list connector). Importing this package does not import NEST."""

from .backend import NestBackend

__all__ = ["NestBackend"]
