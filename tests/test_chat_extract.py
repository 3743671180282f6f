"""The deterministic chat extractor on its test set (tests/chat_cases.py), plus what it reports besides
the constraints: assumptions, conflicts and the words it could not place."""
from __future__ import annotations

import pytest

from adapters.registry import names
from domain.chat_extract import extract
from tests.chat_cases import CASES

PROVIDERS = names()


def test_the_test_set_is_large_and_varied():
    assert len(CASES) >= 80
    fields = {k for _, expected in CASES for k in expected}
    assert fields == {"gpu_type", "gpu_count", "min_gpu_memory_gb", "providers", "regions", "countries", "continents",
                      "pricing", "max_price_per_hour", "max_total", "duration_hours", "interconnect", "use_case"}


@pytest.mark.parametrize("prompt,expected", CASES, ids=[p[:48] for p, _ in CASES])
def test_extracts_exactly(prompt, expected):
    assert extract(prompt, PROVIDERS).constraints.set_fields() == expected


def test_currency_conversion_and_use_case_hints_are_stated():
    ex = extract("fine-tune a 70B model for a week, budget €2,000", PROVIDERS)
    assert "€2,000 = 2340 USD (rate 1.17 USD/EUR)" in ex.assumptions
    assert any(a.startswith("fine-tune 70B (LoRA, bf16 weights) needs about 168 GB") for a in ex.assumptions)


def test_fx_override_changes_the_rate():
    ex = extract("H100 under €2 per hour", PROVIDERS, fx={"EUR": 1.5})
    assert ex.constraints.max_price_per_hour == 3.0


def test_two_gpu_types_and_two_pricings_are_conflicts():
    assert extract("H100 or A100 in Europe", PROVIDERS).conflicts == ["several GPU types: H100, A100"]
    assert extract("A100 spot, but on-demand please", PROVIDERS).conflicts == ["both spot and on-demand"]


def test_words_it_cannot_place_are_reported():
    ex = extract("H100 for my protein folding pipeline", PROVIDERS)
    assert ex.constraints.gpu_type == "H100"
    assert {"protein", "folding", "pipeline"} <= set(ex.unparsed)
    assert extract("8x H100 in Europe for 3 days", PROVIDERS).unparsed == []


def test_lowercase_us_is_a_pronoun_not_a_country():
    assert extract("give us an H100 for a day", PROVIDERS).constraints.countries == []
    assert extract("an H100 in the US for a day", PROVIDERS).constraints.countries == ["US"]


def test_unknown_provider_words_are_not_read_as_providers():
    assert extract("H100 on coreweave", PROVIDERS).constraints.providers == []
    assert extract("H100 on runpod", ["aws"]).constraints.providers == []


def test_out_of_range_values_become_conflicts_not_errors():
    ex = extract("100x H100 for 2 years", PROVIDERS)
    assert ex.constraints.set_fields() == {"gpu_type": "H100"}
    assert [c.split(" is ")[0] for c in ex.conflicts] == ["gpu count 100", "duration hours 17520.0"]


def test_never_raises_on_noise():
    import random

    rnd = random.Random(15)
    words = [p for prompt, _ in CASES for p in prompt.split()] + ["$", "€", "x", "0", "-1", "1e9", "999999999",
                                                                 "k", "%", "\u00a0", "🙂", "ñ", "/h", ",", "."]
    for _ in range(1500):
        prompt = " ".join(rnd.choice(words) for _ in range(rnd.randint(1, 14)))
        prompt = "".join(c for c in prompt if rnd.random() > 0.05)  # drop characters: typos
        if prompt.strip():
            extract(prompt, PROVIDERS)
