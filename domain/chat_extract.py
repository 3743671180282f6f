"""The deterministic extractor: a chat prompt -> `ChatConstraints`, exact on what it covers.

It reads GPU names and aliases (`domain.gpus`), counts ("4x", "eight", "a pair of"), GPU memory
("80GB"), regions, countries, cities and continents (`domain.geo`), budgets per hour or in total in any
currency of `domain.fx`, durations ("72 hours", "3 days", "over the weekend"), spot / on-demand,
interconnect, providers, and use cases ("fine-tune a 70B model" -> memory and count hints). Each matched
span is blanked so that no word is read twice; the words left over (`unparsed`) tell the caller whether
an LLM could add anything. Everything inferred rather than read is listed in `assumptions`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pydantic import ValidationError

from domain import chat_words as W
from domain.chat import ChatConstraints, canonical_gpu, gpu_models
from domain.fx import CURRENCY_WORDS, UnknownCurrency, to_usd
from domain.geo import AREA_PREFIXES, CITY_WORDS, CONTINENT, CONTINENT_WORDS, COUNTRY_WORDS, is_region
from domain.gpus import GPUS

_CUR_SYM = r"(?:us\$|c\$|a\$|s\$|r\$|\$|€|£|¥|₹)"
_CUR_WORD = r"(?:usd|eur|euros?|dollars?|bucks|gbp|pounds?|quid|chf|francs?|jpy|yen|cad|aud|inr|rupees|cny|rmb|" \
            r"yuan|sek|nok|dkk|pln|zloty|sgd|krw|won|brl|reais)"
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s?(?:k|thousand)\b)?"
_AMOUNT = re.compile(rf"(?P<sym>{_CUR_SYM})\s?(?P<n1>{_NUM})(?:\s?(?P<w1>{_CUR_WORD})\b)?"
                     rf"|(?<![\w.])(?P<n2>{_NUM})\s?(?:(?P<w2>{_CUR_WORD})\b|(?P<s2>{_CUR_SYM}))")
_PER_HOUR_AFTER = re.compile(r"^\s*(?:/\s*(?P<g1>gpu\s*[/-]?\s*)?(?:h|hr|hour)\b|per\s+(?P<g2>gpu[- ]?)?(?:h|hr|hour)\b"
                             r"|an?\s+(?P<g3>gpu[- ])?hour\b|hourly\b|/hr\b|per\s+gpu\b)")
_HOURLY_BEFORE = re.compile(r"(?:hourly|per[- ]hour|an hour|/h)\s*(?:budget|rate|price|limit|cap|max\w*)?\s*"
                            r"(?:of|is|at|:|=|under|below|max|up to|<)?\s*$")
_TOTAL_NEAR = re.compile(r"total|overall|all[- ]in|in all|altogether|whole|entire|budget")
_BARE_PER_HOUR = re.compile(r"(?:under|below|less than|max(?:imum)?|at most|up to|no more than|budget of)\s+"
                            r"(?P<n>\d+(?:\.\d+)?)\s*(?:/\s*(?:h|hr|hour)\b|per\s+(?:h|hr|hour)\b|an?\s+hour\b)")
_CENTS = re.compile(r"(?<![\w.])(?P<n>\d+(?:\.\d+)?)\s?(?:cents?|¢)\s*(?:/\s*(?:h|hr|hour)\b|per\s+(?:h|hr|hour)\b|an?\s+hour\b|hourly\b)")
_BARE_TOTAL = re.compile(r"(?:at most|max(?:imum)?|under|below|up to|no more than|within|less than)\s+"
                         r"(?P<n>\d[\d,]*(?:\.\d+)?)(?P<k>\s?k)\b")
_BARE_BUDGET = re.compile(r"budget\s*(?:of|is|:)?\s*(?P<n>\d[\d,]*(?:\.\d+)?)(?P<k>\s?k)?\b(?!\s*(?:gpus?|hours?|days?))")
_REGION_TOKEN = re.compile(r"(?<![\w-])[a-z]{2,}(?:-[a-z]+)+-?\d+[a-z]?(?:-[a-z0-9]+)*(?![\w-])|(?<![\w-])[a-z]{5,}\d?(?![\w-])")
_MEMORY = re.compile(r"(?<![\w.])(?P<n>\d+(?:\.\d+)?)\s?(?P<u>gb|gib|gigs?|g|tb)\b(?P<what>\s*(?:of\s+)?(?:system\s+)?(?:ram|cpu memory|system memory|disk|storage|ssd|nvme)\b)?")
_NUMWORD = "|".join(sorted(W.NUMBER_WORDS, key=len, reverse=True))
_COUNT_BEFORE = re.compile(rf"(?:(?P<d>\d+)|\b(?P<w>{_NUMWORD}|a pair of|pair of|a couple of|couple of|dual|twin|quad|"
                           r"a single|a dozen|an|a))\s*(?:x|×|\*)?\s*(?:nvidia\s+|amd\s+)?$")
_COUNT_AFTER = re.compile(r"^s?\s*(?:x|×|\*)\s*(?P<d>\d+)\b")
_COUNT_GPUS = re.compile(rf"(?:(?P<d>\d+)|\b(?P<w>{_NUMWORD}|a pair of|pair of|a couple of|couple of|dual|quad|a dozen))"
                         r"\s*(?:-|x\s*)?\s*(?:gpus?|cards?|graphics cards?|accelerators?)\b"
                         r"|\b(?:gpus?|cards?)\s*(?:[:=x×]|count\s*(?:of|:)?)\s*(?P<d2>\d+)\b"
                         r"|\bnode of (?P<d3>\d+)\b")
_DURATION = re.compile(rf"(?<![/\w.$€£])(?P<n>\d+(?:\.\d+)?|{_NUMWORD}|an?|a couple of)\s*(?:-\s*)?"
                       r"(?P<u>minutes?|mins?|hours?|hrs?|h|days?|d|weeks?|wks?|months?|mo|years?|fortnight)\b")
_PER_DAY = re.compile(r"(?P<h>\d+(?:\.\d+)?)\s*(?:hours?|hrs?|h)\s*(?:a|per|/|each)\s*day")
_QUANT4 = re.compile(r"4[- ]?bit|int4|\bawq\b|\bgptq\b|\bgguf\b|\bq4\b")
_QUANT8 = re.compile(r"8[- ]?bit|int8|\bfp8\b")
_RTX_NUMBERS = {"3060", "3070", "3080", "3090", "4070", "4080", "4090", "5080", "5090"}


@dataclass
class Extraction:
    """What the extractor read: the constraints, what it assumed, what it could not place."""

    constraints: ChatConstraints
    assumptions: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    found: set[str] = field(default_factory=set)  # constraint fields read from the prompt


class _Text:
    """The prompt in normalized form, with the spans already read blanked out."""

    def __init__(self, prompt: str):
        t = prompt.replace("\u2013", "-").replace("\u2014", "-").replace("\u2019", "'").lower()
        t = re.sub(r"\b([a-z]*\d+[a-z]*?)s\b", _singular, t)  # H100s -> h100, 4090s -> 4090 (L40S stays)
        t = re.sub(r"\b(\d+)\s*x\s*(?=[a-z])", r"\1x ", t)  # 8xH100 -> 8x h100
        t = re.sub(r"\b([a-z]+\d+[a-z0-9-]*?)x(\d+)\b", r"\1 x\2", t)  # h100x8 -> h100 x8
        t = re.sub(r"\b(" + "|".join(_RTX_NUMBERS) + r")\b", r"rtx \1", t).replace("rtx rtx", "rtx")
        words = re.split(r"(\W+)", t)
        fixed = W.fix_typos([w for w in words[::2]], tuple(COUNTRY_WORDS) + tuple(CITY_WORDS))
        words[::2] = fixed
        self.s = " ".join("".join(words).split())

    def take(self, m: re.Match | tuple[int, int]) -> None:
        a, b = m.span() if isinstance(m, re.Match) else m
        self.s = self.s[:a] + " " * (b - a) + self.s[b:]

    def find_words(self, table: Iterable[str]) -> list[tuple[str, re.Match]]:
        """Longest-first whole-word matches of the table's phrases (each span taken once)."""
        out = []
        for phrase in sorted(table, key=len, reverse=True):
            for m in re.finditer(r"(?<![\w$-])" + re.escape(phrase) + r"(?![\w-])", self.s):
                out.append((phrase, m))
                self.take(m)
        return sorted(out, key=lambda pm: pm[1].start())


def _singular(m: re.Match) -> str:
    word = m.group(0)
    return word if canonical_gpu(word) is not None and canonical_gpu(word) != canonical_gpu(m.group(1)) else m.group(1)


def _number(raw: str) -> float:
    raw = raw.strip()
    if raw in W.NUMBER_WORDS:
        return float(W.NUMBER_WORDS[raw])
    if raw in W.COUNT_PHRASES:
        return float(W.COUNT_PHRASES[raw])
    if raw in ("a couple of",):
        return 2.0
    mult = 1000.0 if re.search(r"(?:k|thousand)$", raw) else 1.0
    return float(re.sub(r"[^\d.]", "", re.sub(r"(?:k|thousand)$", "", raw))) * mult


def extract(prompt: str, providers: Iterable[str] = (), fx: Mapping[str, float] | None = None) -> Extraction:
    """Read constraints from `prompt`. `providers`: the provider ids the catalog knows (others are not read)."""
    t = _Text(prompt)
    v: dict[str, Any] = {}
    ex = Extraction(ChatConstraints())
    _budgets(t, v, ex, fx)
    _regions(t, v)
    _gpus(t, v, ex)
    _memory(t, v)
    _counts(t, v, ex)
    _durations(t, v, ex)
    _pricing_interconnect(t, v, ex)
    _geography(t, v, ex, prompt)
    _providers(t, v, set(providers))
    _use_case(t, v, ex)
    if "max_price_per_hour" in v and v.pop("_per_gpu", False):
        count = v.get("gpu_count") or 1
        v["max_price_per_hour"] = round(v["max_price_per_hour"] * count, 4)
        ex.assumptions.append(f"a per-GPU price limit times {count} GPU{'s' if count > 1 else ''} "
                              f"= {v['max_price_per_hour']:g} USD/h per instance")
    v.pop("_per_gpu", None)
    ex.constraints = _validated(v, ex)
    ex.found = set(v)
    ex.unparsed = [w for w in re.findall(r"[a-z][a-z0-9'-]+", t.s) if w not in W.STOPWORDS]
    return ex


def _validated(v: dict, ex: Extraction) -> ChatConstraints:
    """The constraints; a value out of the schema's range ("100 GPUs", "3 years") is dropped and reported as a
    conflict, so the user is asked back instead of the request failing."""
    while True:
        try:
            return ChatConstraints.model_validate(v)
        except ValidationError as exc:
            dropped = False
            for err in exc.errors():
                name = str(err["loc"][0]) if err["loc"] else ""
                if name in v:
                    ex.conflicts.append(f"{name.replace('_', ' ')} {v.pop(name)!r} is out of range ({err['msg']})")
                    dropped = True
            if not dropped:
                raise


def _budgets(t: _Text, v: dict, ex: Extraction, fx) -> None:
    for m in list(_AMOUNT.finditer(t.s)):
        word, sym = m.group("w1") or m.group("w2") or "", m.group("sym") or m.group("s2") or ""
        code = CURRENCY_WORDS.get(word) or CURRENCY_WORDS.get(word.rstrip("s")) or CURRENCY_WORDS.get(sym, "USD")
        try:
            usd = to_usd(_number(m.group("n1") or m.group("n2")), code, fx)
        except UnknownCurrency:
            continue
        after = _PER_HOUR_AFTER.match(t.s[m.end():])
        before = t.s[max(0, m.start() - 30):m.start()]
        end = m.end() + (after.end() if after else 0)
        if after:
            per_hour = True
            per_gpu = any(after.group(g) for g in ("g1", "g2", "g3")) or "per gpu" in after.group(0)
        elif _HOURLY_BEFORE.search(before):
            per_hour, per_gpu = True, False
        elif _TOTAL_NEAR.search(t.s[max(0, m.start() - 25):min(len(t.s), end + 15)]):
            per_hour, per_gpu = False, False
        else:
            per_hour, per_gpu = usd < 50, False
            ex.assumptions.append(f"{m.group(0).strip()} read as {'per hour' if per_hour else 'the total budget'}")
        key = "max_price_per_hour" if per_hour else "max_total"
        if key in v and v[key] != usd:
            ex.conflicts.append(f"two different {'hourly' if per_hour else 'total'} budgets")
        v[key] = usd
        if per_gpu:
            v["_per_gpu"] = True
        if code != "USD":
            ex.assumptions.append(f"{m.group(0).strip()} = {usd:g} USD (rate {to_usd(1, code, fx):g} USD/{code})")
        t.take((m.start(), end))
    for m in list(_CENTS.finditer(t.s)):
        v["max_price_per_hour"] = round(float(m.group("n")) / 100, 4)
        t.take(m)
    for rx, key in ((_BARE_PER_HOUR, "max_price_per_hour"), (_BARE_BUDGET, "max_total"), (_BARE_TOTAL, "max_total")):
        for m in rx.finditer(t.s):
            if key not in v:
                v[key] = _number(m.group("n") + (m.groupdict().get("k") or ""))
                ex.assumptions.append(f"{m.group(0).strip()} read as USD")
            t.take(m)


def _regions(t: _Text, v: dict) -> None:
    for m in list(_REGION_TOKEN.finditer(t.s)):
        if is_region(m.group(0)) and m.group(0) not in COUNTRY_WORDS:
            v.setdefault("regions", []).append(m.group(0))
            t.take(m)
    for prefix, m in t.find_words(AREA_PREFIXES):
        v.setdefault("regions", []).append(prefix)


def _gpus(t: _Text, v: dict, ex: Extraction) -> None:
    found: list[tuple[str, int]] = []
    for n in (4, 3, 2, 1):
        toks = list(re.finditer(r"[a-z0-9][a-z0-9.+-]*", t.s))
        for i in range(len(toks) - n + 1):
            a, b = toks[i].start(), toks[i + n - 1].end()
            phrase = t.s[a:b]
            if "  " in phrase or not re.search(r"\d", phrase) and not re.search(r"\b(?:inferentia|trainium)", phrase):
                continue
            if re.search(r"nv-?link|infini|\bib\b", phrase):  # an interconnect, read on its own
                continue
            if re.fullmatch(r"[\d.]+\s*(?:gb|g|x)?", phrase) or not re.match(r"[a-z]", phrase):
                continue
            canonical = canonical_gpu(phrase)
            if canonical is None:
                continue
            count = _count_near(t, a, b)
            t.take((a, b))
            if count is not None:
                v["gpu_count"] = int(count[0])
                t.take(count[1])
            found.append((canonical, a))
    names = list(dict.fromkeys(c for c, _ in sorted(found, key=lambda x: x[1])))
    if names:
        v["gpu_type"] = names[0]
        if len(names) > 1:
            ex.conflicts.append("several GPU types: " + ", ".join(names))


def _count_near(t: _Text, a: int, b: int) -> tuple[float, tuple[int, int]] | None:
    m = _COUNT_AFTER.match(t.s[b:])
    if m:
        return float(m.group("d")), (b, b + m.end())
    start = max(0, a - 20)
    m = _COUNT_BEFORE.search(t.s[start:a])
    if m:
        raw = m.group("d") or m.group("w")
        return _number(raw), (start + m.start(), start + m.end())
    return None


def _memory(t: _Text, v: dict) -> None:
    for m in list(_MEMORY.finditer(t.s)):
        t.take(m)
        if m.group("what"):
            continue  # instance RAM or disk, not GPU memory
        gb = float(m.group("n")) * (1000 if m.group("u") == "tb" else 1)
        if m.group("u") == "g" and gb < 8:
            continue
        v["min_gpu_memory_gb"] = gb


def _counts(t: _Text, v: dict, ex: Extraction) -> None:
    for m in list(_COUNT_GPUS.finditer(t.s)):
        n = int(_number(m.group("d") or m.group("w") or m.group("d2") or m.group("d3")))
        if "gpu_count" in v and v["gpu_count"] != n:
            ex.conflicts.append(f"{v['gpu_count']} or {n} GPUs")
        v["gpu_count"] = n
        t.take(m)


def _durations(t: _Text, v: dict, ex: Extraction) -> None:
    per_day = _PER_DAY.search(t.s)
    for phrase, m in t.find_words(W.DURATION_PHRASES):
        hours, note = W.DURATION_PHRASES[phrase]
        v.setdefault("duration_hours", hours)
        if note:
            ex.assumptions.append(note)
    total = 0.0
    parts = []
    for m in list(_DURATION.finditer(t.s)):
        if m.group("u") in ("h", "d") and not re.match(r"\d", m.group("n")):
            continue
        parts.append(_number(m.group("n")) * W.UNIT_HOURS[m.group("u")])
        t.take(m)
    if per_day and len(parts) >= 2:
        days = max(parts) / 24
        total = float(per_day.group("h")) * days
        ex.assumptions.append(f"{per_day.group('h')} hours a day for {days:g} days = {total:g} hours")
    elif parts:
        total = sum(parts)
    if total:
        v["duration_hours"] = round(total, 4)


def _pricing_interconnect(t: _Text, v: dict, ex: Extraction) -> None:
    on_demand = t.find_words(W.ON_DEMAND_WORDS)
    spot = t.find_words(W.SPOT_WORDS)
    if on_demand and spot:
        ex.conflicts.append("both spot and on-demand")
    if on_demand or spot:
        v["pricing"] = "on_demand" if on_demand else "spot"
    if t.find_words(W.NVLINK_WORDS):
        v["interconnect"] = "nvlink"
    if t.find_words(W.INFINIBAND_WORDS) or re.search(r"\bib\b", t.s):
        v["interconnect"] = "infiniband"


def _geography(t: _Text, v: dict, ex: Extraction, prompt: str) -> None:
    for word, m in t.find_words(CONTINENT_WORDS):
        v.setdefault("continents", []).append(CONTINENT_WORDS[word])
    for word, m in t.find_words(CITY_WORDS):
        v.setdefault("countries", []).append(CITY_WORDS[word])
        ex.assumptions.append(f"{word.title()} read as country {CITY_WORDS[word]} (providers name regions, not cities)")
    us_upper = re.search(r"\bU\.?S\.?A?\b", prompt) is not None
    words = {w: c for w, c in COUNTRY_WORDS.items() if w != "us" or us_upper}
    for word, m in t.find_words(words):
        v.setdefault("countries", []).append(COUNTRY_WORDS[word])
    for key in ("countries", "continents"):
        if key in v:
            v[key] = list(dict.fromkeys(v[key]))
    # A country inside a named continent narrows it ("Germany, in Europe"): keep the country only.
    if v.get("countries") and v.get("continents"):
        inside = {CONTINENT.get(c) for c in v["countries"]}
        v["continents"] = [c for c in v["continents"] if c not in inside]
        if not v["continents"]:
            del v["continents"]


def _providers(t: _Text, v: dict, known: set[str]) -> None:
    table = {w: p for w, p in W.PROVIDER_WORDS.items() if not known or p in known}
    if known:
        table.update({p: p for p in known if re.fullmatch(r"[a-z0-9]{3,}", p)})
    vast = "vast" in table
    table.pop("vast", None)
    found = [table[w] for w, _ in t.find_words(table)]
    if vast:
        m = re.search(r"\b(?:on|from|at|via|use|using|with)\s+(vast)\b", t.s)
        if m:
            found.append("vastai")
            t.take((m.start(1), m.end(1)))
    if found:
        v["providers"] = list(dict.fromkeys(found))


def _use_case(t: _Text, v: dict, ex: Extraction) -> None:
    s = t.s
    if W.IMAGE_GEN.search(s):
        v["use_case"] = "image generation"
        t.take(W.IMAGE_GEN.search(s))
        if "gpu_type" not in v and "min_gpu_memory_gb" not in v:
            v["min_gpu_memory_gb"] = 16.0
            ex.assumptions.append("image generation (Stable Diffusion class): 16 GB of GPU memory")
        return
    kind = next((k for k, rx in W.USE_CASE_PATTERNS if rx.search(s)), None)
    if kind is None:
        return
    for _, rx in W.USE_CASE_PATTERNS:
        for m in list(rx.finditer(t.s)):
            t.take(m)
    pm = re.search(r"(\d+)\s*x\s*(\d+(?:\.\d+)?)\s*b\b", s) or W.PARAMS.search(s)
    if kind == "inference":
        kind = "inference 4-bit" if _QUANT4.search(s) else "inference 8-bit" if _QUANT8.search(s) else kind
    for rx in (_QUANT4, _QUANT8):
        for m in list(rx.finditer(t.s)):
            t.take(m)
    if pm is None:
        v["use_case"] = kind
        return
    if pm.re is W.PARAMS:
        params = float(pm.group(1)) / (1000 if pm.group(2).startswith("m") else 1)
    else:
        params = float(pm.group(1)) * float(pm.group(2))
    t.take(re.search(re.escape(pm.group(0)), t.s) or (0, 0))
    label = f"{kind} {params:g}B"
    v["use_case"] = label
    need = params * W.BYTES_PER_PARAM[kind] * W.OVERHEAD
    how = {"fine-tune": "LoRA, bf16 weights"}.get(kind, f"{W.BYTES_PER_PARAM[kind]:g} bytes per parameter")
    if "gpu_type" in v:
        mem = min(GPUS[m].memory_gb for m in gpu_models(v["gpu_type"]))
        count = math.ceil(need / mem)
        count = 2 ** math.ceil(math.log2(count)) if count <= 8 else count
        if "gpu_count" not in v:
            v["gpu_count"] = count
            ex.assumptions.append(f"{label} ({how}) needs about {need:.0f} GB of GPU memory: "
                                  f"{count} x {v['gpu_type']} ({mem:g} GB each)")
        return
    if "gpu_count" in v:  # the count is given: memory per GPU follows from it
        per_gpu = need / v["gpu_count"]
        count, mem = v["gpu_count"], next((float(s) for s in W.GPU_MEMORY_STEPS if per_gpu <= s), math.ceil(per_gpu))
    else:
        count, mem = W.memory_plan(need)
    if "min_gpu_memory_gb" not in v:
        v["min_gpu_memory_gb"] = mem
    v.setdefault("gpu_count", count)
    ex.assumptions.append(f"{label} ({how}) needs about {need:.0f} GB of GPU memory: "
                          f"{v['gpu_count']} GPU{'s' if v['gpu_count'] > 1 else ''} with at least "
                          f"{v['min_gpu_memory_gb']:g} GB each")
