"""Cutting one text into contiguous, non-overlapping train / validation / test pieces.

A splitter is data: it names its splits and, given the text's length in characters,
returns each split's `[start, end)` range. `split_text` applies it.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from rnnzoo_datasets.errors import CorpusError

Bounds = dict[str, tuple[int, int]]


class Splitter(Protocol):
    """Names its splits and gives each one's `[start, end)` range for a text length."""

    names: tuple[str, ...]

    def bounds(self, length: int) -> Bounds: ...


@dataclasses.dataclass(frozen=True)
class NinetyFiveFive:
    """90/5/5 by characters, as TFDS's tiny_shakespeare builder splits.

    train = the first floor(0.9 n) characters; the rest is halved, validation taking
    the floor and test the remainder. Integer arithmetic, so text8's 10^8 characters
    give exactly 90M / 5M / 5M.
    """

    names: tuple[str, ...] = ("train", "validation", "test")

    def bounds(self, length: int) -> Bounds:
        train_end = length * 9 // 10
        valid_end = train_end + (length - train_end) // 2
        return {
            "train": (0, train_end),
            "validation": (train_end, valid_end),
            "test": (valid_end, length),
        }


@dataclasses.dataclass(frozen=True)
class Leading:
    """Fixed-size pieces taken in order from the start; the rest is unused.

    d2l: `Leading((("train", 10_000), ("validation", 5_000), ("test", 5_000)))`.
    """

    sizes: tuple[tuple[str, int], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.sizes)

    def bounds(self, length: int) -> Bounds:
        del length  # the sizes are fixed; split_text checks they fit
        bounds, start = {}, 0
        for name, size in self.sizes:
            bounds[name] = (start, start + size)
            start += size
        return bounds


@dataclasses.dataclass(frozen=True)
class ValidationFirst:
    """The TensorFlow deep learning course's text8 split: the first `validation`
    characters are validation, all the rest training. There is no test split."""

    validation: int = 1000
    names: tuple[str, ...] = ("train", "validation")

    def bounds(self, length: int) -> Bounds:
        return {"train": (self.validation, length), "validation": (0, self.validation)}


def split_text(text: str, splitter: Splitter) -> dict[str, str]:
    """Returns `{split: text[start:end]}` for the splitter's ranges.

    Raises:
      CorpusError: a range reaches past the end of the text.
    """
    pieces = {}
    for name, (start, end) in splitter.bounds(len(text)).items():
        if not 0 <= start <= end <= len(text):
            raise CorpusError(
                f"split {name!r} wants characters [{start:,}, {end:,}) but the text "
                f"has only {len(text):,}"
            )
        pieces[name] = text[start:end]
    return pieces
