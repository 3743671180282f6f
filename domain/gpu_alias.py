"""Resolve the `gpu_type` a user typed (canonical name or alias) to the GPU names present in the catalog.

The one place search maps GPU names: `domain.gpus.matching_gpus` gives the canonical models a name or
alias denotes ("H100" -> every H100 variant, "A100-80G" -> both 80 GB A100s); names in the catalog are also
matched ignoring case and punctuation ("a100_80gb" == "A100-80GB"). A name that resolves to nothing is reported back so
the API can answer 422.
"""
from __future__ import annotations

import re
from typing import Iterable

from domain.gpus import matching_gpus

_PUNCT = re.compile(r"[^a-z0-9]+")


def fold(name: str) -> str:
    """Case- and punctuation-insensitive form of a GPU name."""
    return _PUNCT.sub("", name.lower())


def resolve(values: Iterable[str], known: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Map each requested name to the catalog names it denotes.

    Returns ({requested: [catalog names]}, [requested names that denote no GPU at all]). A name known to the
    canonical table but absent from the catalog maps to an empty list (a valid filter that matches nothing).
    """
    by_fold: dict[str, list[str]] = {}
    for k in known:
        by_fold.setdefault(fold(k), []).append(k)
    matched: dict[str, list[str]] = {}
    unknown: list[str] = []
    for value in values:
        canon = matching_gpus(value)
        names = [n for c in canon for n in by_fold.get(fold(c), [])]
        for n in by_fold.get(fold(value), []):
            if n not in names:
                names.append(n)
        if names or canon:
            matched[value] = names
        else:
            unknown.append(value)
    return matched, unknown
