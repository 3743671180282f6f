"""Mutants `benchmarks/mutation.py` leaves out of the score, by name, each with the reason.

Equivalent mutants (the mutated code behaves the same for every input the code can get) and mutants mutmut
cannot exercise. mutmut numbers the mutants of a function in order, so a name stays valid until that function
changes; names that no longer survive are reported as stale in mutation.json and should be removed here.
"""
from __future__ import annotations

_SAME_CODEC = "codec names are case-insensitive: the same codec"
_FALSY = "None is falsy like False: the same flag"
_LOC = "pydantic's errors always carry `loc` and `msg`: the default is never used"
_IMPORT = "runs only while the module is imported (class bodies), before mutmut switches a mutant on"
_NAN = 'float() reads "NAN" like "nan"'
_DTYPE_INT = "lists of Python ints become int64 arrays without the dtype, and an empty list matches nothing either way"
_COUNT = "fromiter's count only preallocates: the same array"
_NONE_NAN = "numpy stores None as NaN in a float64 column"
_STRATEGY = ("only chooses which page strategy runs; every strategy gives the same page "
             "(test_every_page_strategy_matches_the_full_order)")
_CACHE = "a render/lookup cache: a miss recomputes the same value"
_SPLIT0 = "element [0] of a split is the same whatever the split count"
_FIRST_WORD = ("the first word of the text before ' (' is the name's first word (a word holds no space); they differ only "
               "for a name that begins with ' (', where the original raises IndexError")
_PICK = "no family in the GPU table mixes form factors (each form has its own family), so this filter never drops a variant"
EXCLUDED: dict[str, str] = {
    "domain.audit.x_chain_hash__mutmut_6": _SAME_CODEC,
    "domain.audit.x_canonical__mutmut_34": _SAME_CODEC,
    "domain.search.x__collect__mutmut_4": _SAME_CODEC,
    "domain.audit.x_canonical__mutmut_24": _FALSY,
    "domain.audit.x_anonymize_ip__mutmut_13": _FALSY,
    **{f"domain.search.x_parse_query__mutmut_{n}": _LOC for n in (8, 10, 22, 24)},
    "domain.passwords.xǁPasswordPolicyǁ_hasher__mutmut_8": "argon2-cffi's PasswordHasher defaults to Type.ID",
    **{f"domain.gpus.x__g__mutmut_{n}": "_g runs only while domain.gpus is imported, before mutmut switches a mutant on;"
       " the table it builds is pinned by test_canonical and test_gpu_matching" for n in range(1, 11)},
    **{f"domain.gpus.x__pick__mutmut_{n}": _PICK for n in (2, 5)},
    "domain.ratelimit.xǁTokenBucketǁrefill__mutmut_1": "with now == updated the refill adds zero tokens",
    **{f"domain.search.x_parse_query__mutmut_{n}": _LOC for n in (27, 28)},
    **{f"domain.{m}.x__example__mutmut_{n}": _IMPORT for m in ("api", "booking_api") for n in (1, 2, 3)},
    # forecast rules and price series
    **{f"domain.forecast_rules.x_{f}__mutmut_{n}": _NAN
       for f, n in (("choose_model", 10), ("coverage", 22), ("mape", 30), ("smape", 35), ("width", 23))},
    **{f"domain.forecast_rules.x_persistence_residuals__mutmut_{n}":
       "with n <= 1 the range from n - 2 down to first - 1 (first >= 0) is empty either way" for n in (22, 36)},
    **{f"domain.price_series.x_asof_daily__mutmut_{n}": "day indexes are ints (day_index): int64 without the dtype"
       for n in (3, 5)},
    **{f"domain.price_series.x_asof_daily__mutmut_{n}": "numpy converts numbers, numeric text and None (NaN) the same "
       "when they are stored into the float64 output" for n in (8, 10)},
    "domain.price_series.x_asof_daily__mutmut_19": "with no observation the search finds none either (all NaN); "
        "with observations, end < start can only be start - 1 (an empty axis: empty either way)",
    "domain.price_series.x_asof_daily__mutmut_29": "numpy reads the sort kind case-insensitively ('STABLE' is stable)",
    **{f"domain.price_series.x_step_changes__mutmut_{n}": "np.diff of zero or one value is empty: 0 changes either way"
       for n in (5, 9)},
    "domain.price_series.x_last_level_shift__mutmut_29": "nan_to_num replaces NaN with 0.0 by default",
    # bookings, keys, history
    "domain.bookings.x_minutes_completed__mutmut_7": "the elapsed seconds are >= 0 after max(0, ...) and have µs "
        "resolution: int() of x / 60 truncates to the same whole minutes as x // 60",
    **{f"domain.bookings.x_money__mutmut_{n}": "the default decimal context rounds half even" for n in (2, 4)},
    "domain.api_keys.x_new_key__mutmut_2": "token_urlsafe(None) draws its default of 32 bytes",
    "domain.history.x_group_series__mutmut_2": "no row's (provider, region, pricing) key equals '' either",
    # chat planning
    "domain.chat.x_gpu_models__mutmut_1": "every canonical name matches exactly itself "
        "(test_gpu_matching.py::test_every_canonical_name_means_itself)",
    "domain.chat_plan.x_gpu_names__mutmut_3": "without a gpu_type, gpu_models(None) is [] as well (matching_gpus of an "
        "empty query)",
    "domain.chat_plan.x_rank__mutmut_15": "dividing by the one positive duration orders offers like multiplying by it",
    # the offer index
    **{f"domain.offer_index.x__iso_all__mutmut_{n}": "a datetime64[us] array is formatted in its own unit by default"
       for n in (5, 7)},
    "domain.offer_index.x__num__mutmut_3": "fromiter builds float64 from these numbers and NaN without the dtype",
    "domain.offer_index.x__num__mutmut_7": _COUNT,
    "domain.offer_index.xǁOfferIndexǁ__init____mutmut_62": _COUNT,
    "domain.offer_index.xǁOfferIndexǁ__init____mutmut_71": _COUNT,
    "domain.offer_index.xǁ_Catǁ__init____mutmut_10": _COUNT,
    "domain.offer_index.x__num__mutmut_8": _NONE_NAN,
    "domain.offer_index.xǁOfferIndexǁ__init____mutmut_115": "the search service replaces `stale` whole, and while it is "
        "unset (None or {}) no warning is made either way",
    "domain.offer_index.xǁOfferIndexǁresort__mutmut_12": "numpy reads the sort kind case-insensitively ('STABLE' is stable)",
    **{f"domain.offer_index.xǁOfferIndexǁresort__mutmut_{n}": "ranks are only compared and sorted: float64 holds them "
       "exactly" for n in (15, 17)},
    **{f"domain.offer_index.xǁOfferIndexǁupdate_rows__mutmut_{n}": _NONE_NAN for n in (18, 26, 34)},
    **{f"domain.offer_index.x__postings__mutmut_{n}": _DTYPE_INT for n in (12, 14)},
    **{f"domain.offer_index.xǁ_Catǁmask__mutmut_{n}": _DTYPE_INT for n in (10, 12)},
    **{f"domain.offer_index.xǁOfferIndexǁ__init____mutmut_{n}": "ids are unique, so sorting whole rows orders them by id"
       for n in (3, 5)},
    **{f"domain.offer_index.xǁOfferIndexǁ__init____mutmut_{n}": "without the dtype the µs timestamps are float64, exact "
       "below 2^53 (until the year 2255): the same order, text and values" for n in (58, 67)},
    **{f"domain.offer_index.xǁOfferIndexǁprovider_last_seen__mutmut_{n}": "np.full infers int64 from the int64 minimum"
       for n in (7, 10)},
    **{f"domain.offer_index.xǁOfferIndexǁ_all_of__mutmut_{n}": "postings are sorted lists of distinct rows: "
       "intersect1d gives the same rows either way" for n in (17, 20, 21)},
    **{f"domain.offer_index.xǁOfferIndexǁ_gpu_codes__mutmut_{n}": _CACHE for n in (3, 4)},
    **{f"domain.offer_index.xǁOfferIndexǁ_gpu_codes__mutmut_{n}": "the cache's size bound only frees memory"
       for n in (25, 26)},
    "domain.offer_index.xǁOfferIndexǁitem__mutmut_10": _CACHE,
    "domain.offer_index.xǁOfferIndexǁitem_json__mutmut_1": _CACHE,
    "domain.offer_index.xǁOfferIndexǁ_stale_warnings__mutmut_6": "every provider name comes from a row, in code order: "
        "the unique codes of all rows name the same providers in the same order",
    "domain.offer_index.xǁOfferIndexǁpage_json__mutmut_15": "json.dumps(None) is null",
    "domain.offer_index.xǁOfferIndexǁcsv_rows__mutmut_20": "csv.writer writes None as an empty field",
    **{f"domain.offer_index.xǁOfferIndexǁquery__mutmut_{n}": _STRATEGY for n in (24, 25, 26, 27, 28, 29, 40, 41, 42)},
    # search and pagination
    **{f"domain.search.x_query_parameters_openapi__mutmut_{n}": "pydantic's schemas always have `properties`, and "
       "`$defs` whenever a `$ref` points into it; the last segment of a `$ref` is the same by any split"
       for n in (4, 6, 16, 21, 22, 31, 33)},
    "domain.pagination.x_decode_cursor__mutmut_7": "unpadded base64 lacks 0, 2 or 1 '=': -n % 4 and n % 4 agree for 0 "
        "and 2, and for 1 missing the decoder ignores the two extra",
    "domain.pagination.x_encode_cursor__mutmut_16": "a JSON object ends in '}', so its base64 ends in '9', '0' or 'Q' "
        "(then '='), never in 'X'",
    # Terraform snippets
    **{f"domain.iac.x_instance_type__mutmut_{n}": _SPLIT0 for n in (10, 13)},
    **{f"domain.iac.x_instance_type__mutmut_{n}": _FIRST_WORD for n in (15, 18, 19, 30, 31)},
}


