"""Resolve the `gpu_type` a user typed (canonical name or alias) to the GPU names present in the catalog.

The one place search maps GPU names. When `domain.gpus` (the adapters' canonical GPU table) is importable,
its canonicalizer is asked first; otherwise, and for names it does not know, names are compared ignoring
case and punctuation ("a100_80gb" == "A100-80GB"). A name that resolves to nothing is reported back so
the API can answer 422.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable

_PUNCT = re.compile(r"[^a-z0-9]+")
_CANDIDATES = ("canonical_gpu", "canonicalize", "canonical_name", "normalize_gpu_name", "normalize_gpu")


def fold(name: str) -> str:
    """Case- and punctuation-insensitive form of a GPU name."""
    return _PUNCT.sub("", name.lower())


def _load_canonicalizer() -> Callable[[str], str | None] | None:
    try:
        from domain import gpus  # written by the adapters work; optional here
    except ImportError:
        return None
    for attr in _CANDIDATES:
        fn = getattr(gpus, attr, None)
        if callable(fn):
            return fn
    return None


_CANON = _load_canonicalizer()


def canonical(name: str) -> str | None:
    """The canonical GPU name for `name` per `domain.gpus`, or None when unknown there (or no table)."""
    if _CANON is None:
        return None
    try:
        out = _CANON(name)
    except (KeyError, ValueError, LookupError):
        return None
    if out is None or isinstance(out, str):
        return out or None
    for attr in ("name", "canonical", "canonical_name"):  # a GPU record rather than a string
        value = getattr(out, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


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
        canon = canonical(value)
        names = list(by_fold.get(fold(canon), [])) if canon else []
        for n in by_fold.get(fold(value), []):
            if n not in names:
                names.append(n)
        if names or canon:
            matched[value] = names
        else:
            unknown.append(value)
    return matched, unknown
