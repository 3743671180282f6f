"""Vocabulary of the chat extractor: number words, units, pricing and interconnect words, provider names,
use-case memory rules, and the typo-correction dictionary. Pure data plus two small helpers."""
from __future__ import annotations

import difflib
import math
import re

NUMBER_WORDS: dict[str, int] = {
    "one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "sixteen": 16, "twenty": 20, "thirty": 30,
    "thirty-two": 32, "sixty-four": 64, "dozen": 12,
}
COUNT_PHRASES: dict[str, int] = {
    "a pair of": 2, "pair of": 2, "a couple of": 2, "couple of": 2, "dual": 2, "twin": 2, "quad": 4,
    "a single": 1, "a dozen": 12, "half a dozen": 6, "an": 1, "a": 1,
}
# Duration units -> hours.
UNIT_HOURS: dict[str, float] = {
    "minute": 1 / 60, "minutes": 1 / 60, "min": 1 / 60, "mins": 1 / 60,
    "hour": 1, "hours": 1, "hr": 1, "hrs": 1, "h": 1,
    "day": 24, "days": 24, "d": 24, "week": 168, "weeks": 168, "wk": 168, "wks": 168,
    "fortnight": 336, "month": 730, "months": 730, "mo": 730, "year": 8760, "years": 8760,
}
# Fixed phrases -> (hours, assumption stated to the user, or None).
DURATION_PHRASES: dict[str, tuple[float, str | None]] = {
    "over the weekend": (48, "a weekend taken as 48 hours"), "for the weekend": (48, "a weekend taken as 48 hours"),
    "this weekend": (48, "a weekend taken as 48 hours"), "a weekend": (48, "a weekend taken as 48 hours"),
    "overnight": (12, "overnight taken as 12 hours"), "a fortnight": (336, None), "a month": (730, "a month taken as 730 hours"),
    "a week": (168, None), "a day": (24, None), "an hour": (1, None), "half a day": (12, None),
    "half an hour": (0.5, None), "a year": (8760, None), "one week": (168, None), "one day": (24, None),
    "one month": (730, "a month taken as 730 hours"), "an afternoon": (4, "an afternoon taken as 4 hours"),
}
SPOT_WORDS = ("spot", "preemptible", "pre-emptible", "interruptible", "interruptable", "preemptable")
ON_DEMAND_WORDS = ("on-demand", "on demand", "ondemand", "non-interruptible", "not interruptible",
                   "uninterruptible", "no spot", "not spot", "without spot", "no preemption", "not preemptible",
                   "can't be interrupted", "cannot be interrupted", "no interruptions", "dedicated", "reserved")
NVLINK_WORDS = ("nvlink", "nv-link", "nv link", "nvswitch")
INFINIBAND_WORDS = ("infiniband", "infini band", "infini-band")
# Provider spellings -> provider id (only ids the catalog knows are kept at run time).
PROVIDER_WORDS: dict[str, str] = {
    "aws": "aws", "amazon": "aws", "ec2": "aws", "amazon web services": "aws", "gcp": "gcp", "google cloud": "gcp",
    "google": "gcp", "azure": "azure", "microsoft": "azure", "runpod": "runpod", "run pod": "runpod",
    "vast.ai": "vastai", "vastai": "vastai", "vast": "vastai", "lambda labs": "lambdalabs", "lambdalabs": "lambdalabs",
    "lambda": "lambdalabs", "prime intellect": "primeintellect", "primeintellect": "primeintellect",
    "datacrunch": "datacrunch", "data crunch": "datacrunch", "digitalocean": "digitalocean",
    "digital ocean": "digitalocean", "massed compute": "massedcompute", "massedcompute": "massedcompute",
    "paperspace": "paperspace", "hyperstack": "hyperstack", "nebius": "nebius", "crusoe": "crusoe",
    "vultr": "vultr", "scaleway": "scaleway", "cudo": "cudo", "latitude": "latitude", "denvr": "denvr",
}
# Words that say nothing about constraints (what remains after extraction decides whether to ask the LLM).
STOPWORDS = frozenset("""
a an the i we me my our us you your need needs want wants would like looking look find get give show please
for to of in on at with and or but some any gpu gpus card cards instance instances machine machines node nodes
box server servers cloud compute rent rental renting run running use using job jobs it that this is are be can
could should will as by from about around roughly approx approximately maybe cheap cheapest cheaper affordable best
good fast budget max maximum under below less than most up no more least at total per hour hours hourly price
prices cost costs costing which what where how much many somewhere located region regions based only just also
have has do does time long while model models recommend recommendation suggest options option offer offers
available availability x pcs pc hi hello hey thanks thank there some something really very super within each
ca via approx overall gimme vram memory fine ok okay anywhere i'd i'm it's llama mistral mixtral qwen gemma deepseek phi falcon bert gpt llm llms
""".split())
_VOCAB = sorted(set(
    list(NUMBER_WORDS) + list(UNIT_HOURS) + ["spot", "preemptible", "interruptible", "demand", "nvlink",
                                             "infiniband", "weekend", "overnight", "fine-tune", "finetune",
                                             "training", "inference", "serving", "budget", "europe", "asia",
                                             "america", "germany", "france", "frankfurt", "netherlands",
                                             "japan", "singapore", "australia", "canada", "india", "sweden",
                                             "finland", "norway", "london", "paris", "amsterdam", "virginia",
                                             "oregon", "california", "texas", "hourly", "dollars", "euros",
                                             "pounds", "cheapest", "memory", "model", "billion", "diffusion"]))


# Ordinary words a typo fix must never touch (they are near vocabulary words: serve/seven, hours/house).
_PLAIN_WORDS = frozenset("""
serve serves served server servers serving deploy deployed train trained trainer host hosted hosting house
several seventh either order other offer after under never reserve reserved preserve spend spent spending
start starting three there these those their those great greater latest fastest lowest highest using would
could should about above along among between below behind before during except inside outside since until
within without research rendering render video vision audio speech whisper embedding embeddings batch
experiment experiments project projects startup company team cluster clusters workload workloads
""".split())


def fix_typos(words: list[str], extra: tuple[str, ...] = ()) -> list[str]:
    """Correct words of 5+ letters that are one or two edits from a known word ('germny', 'eurpoe', 'weeek')."""
    vocab = _VOCAB + list(extra)
    known = set(vocab) | STOPWORDS | _PLAIN_WORDS
    out = []
    for w in words:
        if len(w) >= 5 and w.isalpha() and w not in known:
            close = difflib.get_close_matches(w, vocab, n=1, cutoff=0.8)
            w = close[0] if close else w
        out.append(w)
    return out


# ---- use cases -> GPU memory -------------------------------------------------------------------------
# Bytes of GPU memory per model parameter, by workload (rule-of-thumb figures, stated to the user):
# bf16 weights are 2 B/param; full training with Adam in mixed precision ~16 B/param; LoRA keeps bf16
# weights plus small adapters; QLoRA and 4-bit inference ~0.6 B/param. Plus 20 % for activations/KV cache.
BYTES_PER_PARAM = {"full fine-tune": 16.0, "pretrain": 16.0, "training": 16.0, "fine-tune": 2.0, "qlora": 0.6,
                   "inference": 2.0, "inference 8-bit": 1.0, "inference 4-bit": 0.6}
OVERHEAD = 1.2
GPU_MEMORY_STEPS = (16, 24, 48, 80, 141)
USE_CASE_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("full fine-tune", re.compile(r"full[- ]?(?:parameter[- ]?)?fine[- ]?tun\w*|full[- ]?finetun\w*")),
    ("pretrain", re.compile(r"pre-?train\w*|train(?:ing)? (?:\S+ ){0,3}from scratch")),
    ("qlora", re.compile(r"\bq-?lora\b")),
    ("fine-tune", re.compile(r"fine[- ]?tun\w*|finetun\w*|\blora\b|\bsft\b")),
    ("training", re.compile(r"\btrain\w*")),
    ("inference", re.compile(r"inference|serv(?:e|ing)|deploy|host(?:ing)?\b|run(?:ning)? (?:a |an |the )?(?:\S+ )?(?:model|llm)|chatbot|\bllm\b")),
]
IMAGE_GEN = re.compile(r"stable[- ]?diffusion|\bsdxl\b|\bflux\b|image generation")
PARAMS = re.compile(r"(\d+(?:\.\d+)?)\s*(b|bn|billion|m|million)\b(?:[- ]?param(?:eter)?s?)?")


def memory_plan(total_gb: float) -> tuple[int, float]:
    """(gpu_count, min memory per GPU) that holds `total_gb`: one GPU of the smallest step that fits, else
    80 GB parts in a power-of-two count up to 8, else 141 GB parts (8 of them, or more)."""
    for step in GPU_MEMORY_STEPS[:-1]:
        if total_gb <= step:
            return 1, float(step)
    count = 2 ** math.ceil(math.log2(total_gb / 80))
    if count <= 8:
        return count, 80.0
    return max(8, math.ceil(total_gb / 141)), 141.0
