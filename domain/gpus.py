"""Canonical GPU models and the resolution of every provider's spelling to one of them.

Sources name the same part in many ways ("A100-80G", "A100 SXM4 80GB", "a100-80gb",
"NVIDIA A100-SXM4-80GB", "Tesla V100-PCIE-16GB", "h100-80gb-mega", ...). `resolve()` maps a raw name
(plus optional hints: memory per GPU, a form-factor word from the instance type) to a `GpuModel`.
Matching ignores case, spaces and punctuation. An unknown name raises `UnknownGpu`: the ingestion
pipeline counts it as a rejected record with that reason, and a test fails if any bundled source has one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["GpuModel", "UnknownGpu", "GPUS", "ALIASES", "resolve", "normalize", "by_name", "matching_gpus"]


class UnknownGpu(ValueError):
    """No canonical GPU model matches this name; the record is rejected with reason `unknown_gpu`."""


@dataclass(frozen=True)
class GpuModel:
    name: str                 # canonical name, also the NATS subject token and the search facet
    vendor: str               # NVIDIA, AMD, AWS, Qualcomm, ARM
    memory_gb: float          # per GPU
    form_factor: str | None   # SXM, PCIe, NVL, OAM, Superchip; None when the source never says
    family: str               # the name without memory/form qualifiers, used for fuzzy matching


def _g(name: str, vendor: str, mem: float, form: str | None, family: str, *aliases: str) -> tuple[GpuModel, tuple[str, ...]]:
    return GpuModel(name, vendor, mem, form, family), aliases


# name, vendor, memory GB/GPU, form factor, family, extra aliases (matched after normalize()).
_TABLE = [
    _g("B300", "NVIDIA", 288, "SXM", "b300", "B300 SXM6 AC", "B300 Blackwell"),
    _g("B200", "NVIDIA", 180, "SXM", "b200", "B200 Blackwell"),
    _g("GH200", "NVIDIA", 96, "Superchip", "gh200", "GH200 96GB"),
    _g("H200-SXM", "NVIDIA", 141, "SXM", "h200", "H200", "H200 SXM5", "H200 141GB"),
    _g("H200-NVL", "NVIDIA", 141, "NVL", "h200nvl"),
    _g("H100-SXM", "NVIDIA", 80, "SXM", "h100", "H100", "H100 80GB HBM3", "H100 SXM5", "h100-80gb",
       "h100-80gb-mega", "H100 Mega", "H100 80GB"),
    _g("H100-PCIe", "NVIDIA", 80, "PCIe", "h100pcie"),
    _g("H100-NVL", "NVIDIA", 94, "NVL", "h100nvl"),
    _g("A100-80GB-SXM", "NVIDIA", 80, "SXM", "a100", "A100-80G", "a100-80gb", "A100 SXM", "A100 80GB"),
    _g("A100-40GB-SXM", "NVIDIA", 40, "SXM", "a100", "A100", "a100 40gb", "A100 SXM 40GB"),
    _g("A100-80GB-PCIe", "NVIDIA", 80, "PCIe", "a100pcie", "A100 PCIE", "A100 PCIe 80GB"),
    _g("A100-40GB-PCIe", "NVIDIA", 40, "PCIe", "a100pcie", "A100 PCIe 40GB"),
    _g("A10G", "NVIDIA", 24, "PCIe", "a10g"),
    _g("A10", "NVIDIA", 24, "PCIe", "a10"),
    _g("A16", "NVIDIA", 16, "PCIe", "a16"),
    _g("A30", "NVIDIA", 24, "PCIe", "a30"),
    _g("A40", "NVIDIA", 48, "PCIe", "a40"),
    _g("L4", "NVIDIA", 24, "PCIe", "l4"),
    _g("L40", "NVIDIA", 48, "PCIe", "l40"),
    _g("L40S", "NVIDIA", 48, "PCIe", "l40s"),
    _g("T4", "NVIDIA", 16, "PCIe", "t4"),
    _g("V100-16GB", "NVIDIA", 16, None, "v100", "V100", "Tesla V100", "V100 SXM2", "V100-PCIE-16GB",
       "V100-SXM2-16GB"),
    _g("V100-32GB", "NVIDIA", 32, None, "v100", "V100-32G"),
    _g("K80", "NVIDIA", 12, "PCIe", "k80"),
    _g("M60", "NVIDIA", 8, "PCIe", "m60"),
    _g("GRID-K520", "NVIDIA", 4, "PCIe", "gridk520", "K520"),
    _g("RTX-A2000", "NVIDIA", 6, "PCIe", "rtxa2000", "A2000"),
    _g("RTX-A4000", "NVIDIA", 16, "PCIe", "rtxa4000", "A4000"),
    _g("RTX-A4500", "NVIDIA", 20, "PCIe", "rtxa4500", "A4500"),
    _g("RTX-A5000", "NVIDIA", 24, "PCIe", "rtxa5000", "A5000"),
    _g("RTX-A6000", "NVIDIA", 48, "PCIe", "rtxa6000", "A6000"),
    _g("RTX-2000-Ada", "NVIDIA", 16, "PCIe", "rtx2000ada", "RTX 2000 Ada Generation"),
    _g("RTX-4000-Ada", "NVIDIA", 20, "PCIe", "rtx4000ada", "RTX4000Ada", "RTX 4000 Ada Generation"),
    _g("RTX-4000-SFF-Ada", "NVIDIA", 20, "PCIe", "rtx4000sffada", "RTX 4000 Ada SFF",
       "RTX 4000 SFF Ada Generation"),
    _g("RTX-5000-Ada", "NVIDIA", 32, "PCIe", "rtx5000ada", "RTX 5000 Ada Generation"),
    _g("RTX-6000-Ada", "NVIDIA", 48, "PCIe", "rtx6000ada", "RTX6000Ada", "RTX 6000 Ada Generation"),
    _g("RTX-PRO-4000", "NVIDIA", 24, "PCIe", "rtxpro4000", "RTX PRO 4000 Blackwell"),
    _g("RTX-PRO-4500", "NVIDIA", 32, "PCIe", "rtxpro4500", "RTX PRO 4500 Blackwell", "RTX PRO 4500 SE",
       "RTX PRO 4500 Blackwell Server Edition"),
    _g("RTX-PRO-5000", "NVIDIA", 48, "PCIe", "rtxpro5000", "RTX PRO 5000 Blackwell"),
    _g("RTX-PRO-6000", "NVIDIA", 96, "PCIe", "rtxpro6000", "RTXPro6000", "RTX PRO 6000 Blackwell",
       "RTX PRO 6000 Blackwell Server Edition", "RTX PRO 6000 WK", "RTX PRO 6000 MaxQ",
       "RTX PRO 6000 Blackwell Workstation Edition", "RTX PRO 6000 Blackwell Max-Q Workstation Edition",
       "PRO 6000 MIG 24GB", "PRO 6000 MIG 48GB", "RTX PRO 6000 Blackwell Server Edition MIG 1g.24gb",
       "RTX PRO 6000 Blackwell Server Edition MIG 2g.48gb"),
    _g("RTX-3060", "NVIDIA", 12, "PCIe", "rtx3060"),
    _g("RTX-3070", "NVIDIA", 8, "PCIe", "rtx3070"),
    _g("RTX-3080", "NVIDIA", 10, "PCIe", "rtx3080"),
    _g("RTX-3080-Ti", "NVIDIA", 12, "PCIe", "rtx3080ti"),
    _g("RTX-3090", "NVIDIA", 24, "PCIe", "rtx3090"),
    _g("RTX-3090-Ti", "NVIDIA", 24, "PCIe", "rtx3090ti"),
    _g("RTX-4070-Ti", "NVIDIA", 12, "PCIe", "rtx4070ti"),
    _g("RTX-4080", "NVIDIA", 16, "PCIe", "rtx4080"),
    _g("RTX-4080-SUPER", "NVIDIA", 16, "PCIe", "rtx4080super"),
    _g("RTX-4090", "NVIDIA", 24, "PCIe", "rtx4090", "RTX4090"),
    _g("RTX-5080", "NVIDIA", 16, "PCIe", "rtx5080"),
    _g("RTX-5090", "NVIDIA", 32, "PCIe", "rtx5090", "RTX5090"),
    _g("MI300X", "AMD", 192, "OAM", "mi300x", "AMD Instinct MI300X OAM", "MI300X OAM"),
    _g("Radeon-Pro-V520", "AMD", 8, "PCIe", "radeonprov520", "AMD Radeon Pro V520"),
    _g("Inferentia", "AWS", 8, None, "inferentia", "AWS Inferentia"),
    _g("Inferentia2", "AWS", 32, None, "inferentia2", "AWS Inferentia2"),
    _g("Trainium", "AWS", 32, None, "trainium", "AWS Trainium"),
    _g("Qualcomm-AI-100", "Qualcomm", 32, "PCIe", "qualcommai100", "Qualcomm AI 100"),
    _g("Mali-G78", "ARM", 4, None, "malig78", "ARM Mali-G78MP12", "Mali-G78MP12"),
]

GPUS: dict[str, GpuModel] = {m.name: m for m, _ in _TABLE}
# Canonical name -> the other spellings sources use for it (the vocabulary tests draw user words from).
ALIASES: dict[str, tuple[str, ...]] = {m.name: aliases for m, aliases in _TABLE}

# Words that never change which part is meant.
_NOISE = re.compile(r"nvidia|geforce|tesla|instinct|\bamd\b|hbm\d?e?|gddr\d?x?|blackwell|generation")
_MEM = re.compile(r"(?<![a-z0-9])(\d{2,3})\s*g(?:b|ib)?(?![a-z0-9])")
_FORM_WORDS = re.compile(r"sxm\d*|pcie|nvlink|mega|oam")


def normalize(raw: str) -> str:
    """Lower-case, vendor words dropped, only [a-z0-9] kept: 'NVIDIA A100-SXM4-80GB' -> 'a100sxm480gb'."""
    return re.sub(r"[^a-z0-9]+", "", _NOISE.sub(" ", raw.lower()))


_EXACT: dict[str, GpuModel] = {}
_FAMILY: dict[str, list[GpuModel]] = {}
for _m, _aliases in _TABLE:
    for _a in (_m.name, *_aliases):
        _EXACT.setdefault(normalize(_a), _m)
    _FAMILY.setdefault(_m.family, []).append(_m)


def by_name(name: str) -> GpuModel:
    """The model with this canonical name (KeyError otherwise)."""
    return GPUS[name]


def _form_hint(text: str) -> str | None:
    t = text.lower()
    if re.search(r"nvl(?!ink)", t):
        return "NVL"
    if "sxm" in t or "nvlink" in t or "mega" in t:
        return "SXM"
    if "pcie" in t:
        return "PCIe"
    if "oam" in t:
        return "OAM"
    return None


def _mem_in(raw: str) -> float | None:
    m = _MEM.search(re.sub(r"[^a-z0-9.]+", " ", raw.lower()))
    return float(m.group(1)) if m else None


def _pick(variants: list[GpuModel], memory_gb: float | None, form: str | None) -> GpuModel:
    cands = variants
    if form is not None:
        cands = [v for v in cands if v.form_factor == form] or cands
    if memory_gb:
        cands = sorted(cands, key=lambda v: abs(v.memory_gb - memory_gb))
    return cands[0]


def resolve(raw: str, memory_gb: float | None = None, hint: str | None = None) -> GpuModel:
    """Map a provider's GPU name to its canonical model; raise UnknownGpu when nothing matches.

    memory_gb: memory per GPU when the source gives it (picks A100 40 vs 80 GB, V100 16 vs 32 GB).
    hint: other text that may name the form factor (an instance type such as 'A100-sxm4-80Gx8').
    """
    if not raw or not raw.strip():
        raise UnknownGpu("empty GPU name")
    mem = _mem_in(raw) or memory_gb
    form = _form_hint(raw) or (_form_hint(hint) if hint else None)
    exact = _EXACT.get(normalize(raw))
    if exact is not None and (mem is None or abs(exact.memory_gb - mem) <= 0.15 * exact.memory_gb) \
            and (form is None or exact.form_factor in (None, form)):
        return exact
    # Drop memory and form words, match the family, then choose the variant by memory and form.
    words = re.sub(r"[^a-z0-9.]+", " ", _NOISE.sub(" ", raw.lower()))
    base = re.sub(r"[^a-z0-9]+", "", _FORM_WORDS.sub(" ", _MEM.sub(" ", words)))
    for key in ((base + "pcie") if form == "PCIe" else None, (base + "nvl") if form == "NVL" else None, base):
        if key and key in _FAMILY:
            return _pick(_FAMILY[key], mem, form)
    if exact is not None:
        return exact
    raise UnknownGpu(f"unknown GPU name {raw!r}")


_FORM_SUFFIX = re.compile(r"(pcie|nvl|sxm)$")
_CANONICAL_NORM = {normalize(n): n for n in GPUS}


def _model_base(family: str) -> str:
    return _FORM_SUFFIX.sub("", family)


def matching_gpus(query: str) -> list[str]:
    """Every canonical model a user's GPU filter denotes (search and the price stream).

    A bare model name means all its variants ("H100" -> H100-SXM, H100-PCIe, H100-NVL); memory or
    form-factor words narrow it ("A100 80GB" -> both 80 GB A100s, "H100 SXM5" -> H100-SXM); a canonical
    name or a provider's full spelling ("NVIDIA A100-SXM4-80GB") means that model. Empty when the name
    denotes no GPU at all.
    """
    if not query or not query.strip():
        return []
    exact = _CANONICAL_NORM.get(normalize(query))
    if exact is not None:
        return [exact]
    mem, form = _mem_in(query), _form_hint(query)
    words = re.sub(r"[^a-z0-9.]+", " ", _NOISE.sub(" ", query.lower()))
    base = _model_base(re.sub(r"[^a-z0-9]+", "", _FORM_WORDS.sub(" ", _MEM.sub(" ", words))))
    cands = [m for m in GPUS.values() if base and _model_base(m.family) == base]
    if form is not None:
        cands = [m for m in cands if m.form_factor in (form, None)]
    if mem:
        cands = [m for m in cands if abs(m.memory_gb - mem) <= 0.15 * m.memory_gb]
    if cands:
        return [m.name for m in cands]
    try:
        return [resolve(query).name]
    except UnknownGpu:
        return []
