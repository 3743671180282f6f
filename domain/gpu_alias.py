"""What the GPU words of a filter select: the one rule of search, export and the price stream.

`domain.gpus.matching_gpus` gives the canonical models a word denotes ("H100" -> every H100 variant,
"A100-80G" -> both 80 GB A100s, "A10 PCIe" -> A10 only). An offer's (or a price update's) GPU name means
its canonical model (`domain.gpus.resolve`, as ingestion resolves it), so "H100_80GB_SXM5" is an H100-SXM.
A word selects a GPU name when the name's model is one the word denotes, or when the two are equal ignoring
case and punctuation ("a100_80gb" == "A100-80GB"). A word that denotes no GPU and equals no known name is
reported back so the API can answer 422.
"""
from __future__ import annotations

import functools
import re
from typing import Iterable

from domain.gpus import UnknownGpu, matching_gpus
from domain.gpus import resolve as resolve_gpu

_PUNCT = re.compile(r"[^a-z0-9]+")


def fold(name: str) -> str:
    """Case- and punctuation-insensitive form of a GPU name."""
    return _PUNCT.sub("", name.lower())


@functools.lru_cache(maxsize=4096)
def canonical(name: str) -> str | None:
    """The canonical model an offer's GPU name means, None when it names no known GPU."""
    try:
        return resolve_gpu(name).name
    except UnknownGpu:
        return None


@functools.lru_cache(maxsize=4096)
def denoted(word: str) -> frozenset[str]:
    """The canonical models a user's word denotes (`matching_gpus`, remembered: subscriptions repeat words)."""
    return frozenset(matching_gpus(word))


class GpuSelection:
    """The GPU names a filter's words select, prepared once per filter (`selects` is two set lookups)."""

    __slots__ = ("models", "folds")

    def __init__(self, words: Iterable[str]):
        words = list(words)
        self.models = frozenset().union(*(denoted(w) for w in words))
        self.folds = frozenset(fold(w) for w in words)

    def selects(self, name: str) -> bool:
        return canonical(name) in self.models or fold(name) in self.folds

    def keys(self) -> frozenset[str]:
        """Index keys of the names this selection can select: see `name_keys`."""
        return self.models | self.folds


@functools.lru_cache(maxsize=4096)
def name_keys(name: str) -> tuple[str, ...]:
    """Index keys of one GPU name, its canonical model (when known) and its folded form, the latter always
    last: a selection whose `keys()` shares none of them does not select the name."""
    model = canonical(name)
    return (model, fold(name)) if model is not None else (fold(name),)


def resolve(values: Iterable[str], known: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Map each requested word to the known GPU names it selects.

    Returns ({requested: [known names]}, [requested words that denote no GPU at all]). A word the canonical
    table knows but that selects no known name maps to an empty list (a valid filter that matches nothing).
    """
    known = list(dict.fromkeys(known))
    matched: dict[str, list[str]] = {}
    unknown: list[str] = []
    for value in values:
        selection = GpuSelection([value])
        names = [k for k in known if selection.selects(k)]
        if names or selection.models:
            matched[value] = names
        else:
            unknown.append(value)
    return matched, unknown
