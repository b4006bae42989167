"""The :class:`Dataset` every loader returns: train, test and validation samples."""

from __future__ import annotations

from dataclasses import dataclass, replace
from numbers import Integral

import numpy as np

from .errors import DataError, UsageError


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train, test (and optionally validation) samples with integer labels.

    Images are ``(N, H, W)`` or ``(N, H, W, K)`` (K colour channels), uint8
    (0..255) or float (0..1); an event dataset holds
    :class:`~spinnconv.events.EventRecordings` (shape ``(N, H, W)``) instead.
    Labels are ``(N,)`` int64 in ``0 .. n_classes - 1``. The validation split,
    when there is one, is part of the original training images
    (:meth:`split`), never test images.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        splits = ("train", "test", "val") if self.val_images is not None else ("train", "test")
        for split in splits:
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if images.ndim not in (3, 4) or labels.ndim != 1 or len(images) != len(labels):
                raise DataError(f"dataset {self.name!r}: {split} images {images.shape} "
                                f"and labels {labels.shape} do not match")
            if images.shape[1:] != self.train_images.shape[1:]:
                raise DataError(f"dataset {self.name!r}: train images "
                                f"{self.train_images.shape[1:]} and {split} images "
                                f"{images.shape[1:]} differ in size")

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(H, W)`` of one image, in pixels."""
        height, width = self.train_images.shape[1:3]
        return int(height), int(width)

    @property
    def channels(self) -> int:
        """Colour channels of an image (1 for ``(N, H, W)``)."""
        return int(self.train_images.shape[3]) if self.train_images.ndim == 4 else 1

    @property
    def is_events(self) -> bool:
        """True when the samples are event recordings, not images."""
        from .events import EventRecordings

        return isinstance(self.train_images, EventRecordings)

    @property
    def n_classes(self) -> int:
        """Number of classes: the largest label + 1."""
        largest = [int(labels.max()) for labels in (self.train_labels, self.test_labels,
                                                     self.val_labels)
                   if labels is not None and labels.size]
        return max(largest, default=-1) + 1

    @property
    def n_train(self) -> int:
        return len(self.train_labels)

    @property
    def n_test(self) -> int:
        return len(self.test_labels)

    @property
    def n_validation(self) -> int:
        return 0 if self.val_labels is None else len(self.val_labels)

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> Dataset:
        """The first ``n_train`` training and ``n_test`` test images (None = all)."""
        n_train = _check_count("n_train", n_train, self.n_train, "training")
        n_test = _check_count("n_test", n_test, self.n_test, "test")
        return replace(self, train_images=self.train_images[:n_train],
                       train_labels=self.train_labels[:n_train],
                       test_images=self.test_images[:n_test],
                       test_labels=self.test_labels[:n_test])

    def split(self, n_validation: int, seed: int) -> Dataset:
        """Hold out ``n_validation`` training images as the validation split.

        They are the last ``n_validation`` of a permutation of the training
        images drawn with ``seed``; the rest stay training images, in their
        original order (so :meth:`subset` still takes the first ones).
        """
        if self.val_images is not None:
            raise UsageError(f"dataset {self.name!r} already has a validation split")
        n_validation = _check_count("--validation-examples", n_validation, self.n_train - 1,
                                    "training (one must stay for training)")
        order = np.random.default_rng(seed).permutation(self.n_train)
        held_out, kept = np.sort(order[-n_validation:]), np.sort(order[:-n_validation])
        return replace(self, train_images=self.train_images[kept],
                       train_labels=self.train_labels[kept],
                       val_images=self.train_images[held_out],
                       val_labels=self.train_labels[held_out])


def _check_count(name: str, value, available: int, split: str) -> int:
    if value is None:
        return available
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)):
        raise UsageError(f"{name} must be a positive integer, got {value!r}")
    value = int(value)
    if value <= 0:
        raise UsageError(f"{name} must be > 0, got {value} ({available} {split} images "
                         f"available)")
    if value > available:
        raise UsageError(f"{name}={value} is more than the {available} {split} images "
                         f"available")
    return value


# --------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------
