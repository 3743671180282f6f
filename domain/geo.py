"""Region names of every source -> (country ISO 3166-1 alpha-2, continent code).

Continents: AF, AS, EU, NA, OC, SA. `locate(region)` understands AWS ('eu-west-2', local zones
'us-east-1-atl-1', Wavelength 'eu-west-2-wl1-lon1'), GCP ('europe-west4'), Azure ('westeurope'), Nebius
('eu-north1'), Shadeform ('kansascity-usa-2'), Vast.ai geolocation ('Texas, US', ', US', 'Czechia, CZ, EU') and
the multi-region marker 'global' (-> (None, None)). An unknown region raises `UnknownRegion`.
"""
from __future__ import annotations

import functools
import re

__all__ = ["UnknownRegion", "locate", "place", "CONTINENT", "GLOBAL_REGIONS", "COUNTRY_WORDS", "CITY_WORDS",
           "CONTINENT_WORDS", "AREA_PREFIXES", "is_region"]


class UnknownRegion(ValueError):
    """The region is in none of the tables; the record is rejected with reason `unknown_region`."""


# ISO2 -> continent, for every country any bundled source lists.
CONTINENT: dict[str, str] = {}
for _cont, _codes in {
    "NA": "US CA MX",
    "SA": "BR CL AR PE CO",
    "EU": "GB IE FR DE NL BE CH AT IT ES PT SE NO FI DK IS PL CZ HU RO BG EE LV LT SK SI HR GR UA RU MK RS LU",
    "AS": "JP KR TW HK MO CN SG IN ID MY TH VN PH IL AE SA QA BH OM TR KZ",
    "OC": "AU NZ",
    "AF": "ZA NG MA SN EG KE",
}.items():
    for _c in _codes.split():
        CONTINENT[_c] = _cont

GLOBAL_REGIONS = frozenset({"global", "any", "multi-region"})

_AWS = {
    "us-east-1": "US", "us-east-2": "US", "us-west-1": "US", "us-west-2": "US", "us-gov-east-1": "US",
    "us-gov-west-1": "US", "ca-central-1": "CA", "ca-west-1": "CA", "sa-east-1": "BR", "mx-central-1": "MX",
    "eu-central-1": "DE", "eu-central-2": "CH", "eu-west-1": "IE", "eu-west-2": "GB", "eu-west-3": "FR",
    "eu-south-1": "IT", "eu-south-2": "ES", "eu-north-1": "SE", "il-central-1": "IL", "me-central-1": "AE",
    "me-south-1": "BH", "af-south-1": "ZA", "ap-east-1": "HK", "ap-northeast-1": "JP", "ap-northeast-2": "KR",
    "ap-northeast-3": "JP", "ap-south-1": "IN", "ap-south-2": "IN", "ap-southeast-1": "SG",
    "ap-southeast-2": "AU", "ap-southeast-3": "ID", "ap-southeast-4": "AU", "ap-southeast-5": "MY",
    "ap-southeast-7": "TH",
}
# AWS Local Zone / Wavelength city codes (IATA-style) whose country differs from, or refines, the parent.
_AWS_CITY = {
    "los": "NG", "tpe": "TW", "ccu": "IN", "del": "IN", "bkk": "TH", "mnl": "PH", "akl": "NZ", "per": "AU",
    "ham": "DE", "waw": "PL", "cph": "DK", "hel": "FI", "mct": "OM", "lim": "PE", "qro": "MX", "scl": "CL",
    "kix": "JP", "nrt": "JP", "cjj": "KR", "sel": "KR", "yto": "CA", "ber": "DE", "dtm": "DE", "muc": "DE",
    "lon": "GB", "man": "GB", "cmn": "MA", "dss": "SN",
}
_GCP_PREFIX = {
    "africa-south1": "ZA", "asia-east1": "TW", "asia-east2": "HK", "asia-northeast1": "JP",
    "asia-northeast2": "JP", "asia-northeast3": "KR", "asia-south1": "IN", "asia-south2": "IN",
    "asia-southeast1": "SG", "asia-southeast2": "ID", "australia-southeast1": "AU", "australia-southeast2": "AU",
    "europe-central2": "PL", "europe-north1": "FI", "europe-north2": "SE", "europe-southwest1": "ES",
    "europe-west1": "BE", "europe-west2": "GB", "europe-west3": "DE", "europe-west4": "NL", "europe-west6": "CH",
    "europe-west8": "IT", "europe-west9": "FR", "europe-west10": "DE", "europe-west12": "IT",
    "me-central1": "QA", "me-central2": "SA", "me-west1": "IL", "northamerica-northeast1": "CA",
    "northamerica-northeast2": "CA", "northamerica-south1": "MX", "southamerica-east1": "BR",
    "southamerica-west1": "CL",
}
_AZURE = {
    "eastus": "US", "eastus2": "US", "westus": "US", "westus2": "US", "westus3": "US", "centralus": "US",
    "northcentralus": "US", "southcentralus": "US", "westcentralus": "US", "usgovvirginia": "US",
    "usgovarizona": "US", "usgovtexas": "US", "canadacentral": "CA", "canadaeast": "CA", "brazilsouth": "BR",
    "westeurope": "NL", "northeurope": "IE", "uksouth": "GB", "ukwest": "GB", "francecentral": "FR",
    "germanywestcentral": "DE", "italynorth": "IT", "polandcentral": "PL", "spaincentral": "ES",
    "swedencentral": "SE", "switzerlandnorth": "CH", "norwayeast": "NO", "japaneast": "JP", "japanwest": "JP",
    "koreacentral": "KR", "centralindia": "IN", "southindia": "IN", "southeastasia": "SG", "eastasia": "HK",
    "australiaeast": "AU", "indonesiacentral": "ID", "malaysiawest": "MY", "uaenorth": "AE",
    "qatarcentral": "QA", "israelcentral": "IL", "southafricanorth": "ZA", "mexicocentral": "MX",
}
# Nebius regions ('eu-north1' Finland, 'eu-west1' Paris); its 'us-central1' is matched by the GCP-style rule.
_NEBIUS = {"eu-north1": "FI", "eu-west1": "FR"}
# Country names as Shadeform ('<city>-<country>-<n>') and Vast.ai ('Texas, US') spell them.
_COUNTRY_NAME = {
    "usa": "US", "canada": "CA", "uk": "GB", "germany": "DE", "france": "FR", "finland": "FI", "norway": "NO",
    "sweden": "SE", "iceland": "IS", "poland": "PL", "india": "IN", "japan": "JP", "singapore": "SG",
    "australia": "AU", "netherlands": "NL", "spain": "ES", "italy": "IT",
}


def _country(code: str) -> tuple[str, str]:
    code = code.upper()
    if code not in CONTINENT:
        raise UnknownRegion(f"unknown country code {code!r}")
    return code, CONTINENT[code]


def locate(region: str) -> tuple[str | None, str | None]:
    """(country, continent) of a provider region; (None, None) for a global offer."""
    r = (region or "").strip()
    if not r:
        raise UnknownRegion("empty region")
    low = r.lower()
    if low in GLOBAL_REGIONS:
        return None, None
    if "," in r:  # Vast.ai geolocation: '<state or country>, <ISO2>[, <continent>]'
        parts = [p.strip() for p in r.split(",")]
        if len(parts) >= 2 and re.fullmatch(r"[A-Za-z]{2}", parts[1]):
            return _country(parts[1])
        raise UnknownRegion(f"unknown geolocation {region!r}")
    if low in _AZURE:
        return _country(_AZURE[low])
    if low in _AWS:
        return _country(_AWS[low])
    m = re.fullmatch(r"([a-z]{2}(?:-gov)?-[a-z]+-\d)-(?:wl\d-)?([a-z]{3})?(?:\d|-\d)?", low)
    if m and m.group(1) in _AWS:
        city = m.group(2)
        return _country(_AWS_CITY.get(city, _AWS[m.group(1)]) if city else _AWS[m.group(1)])
    if re.fullmatch(r"[a-z]{2}(?:-gov)?-[a-z]+-\d-wl\d", low) and low.rsplit("-", 1)[0] in _AWS:
        return _country(_AWS[low.rsplit("-", 1)[0]])
    if low in _GCP_PREFIX:
        return _country(_GCP_PREFIX[low])
    if low in _NEBIUS:
        return _country(_NEBIUS[low])
    if re.fullmatch(r"us-[a-z]+\d+", low):  # GCP us-central1, us-east4, us-south1, ...
        return _country("US")
    m = re.fullmatch(r"[a-z]+-([a-z]+)-\d+", low)  # Shadeform '<city>-<country>-<n>'
    if m and m.group(1) in _COUNTRY_NAME:
        return _country(_COUNTRY_NAME[m.group(1)])
    raise UnknownRegion(f"unknown region {region!r}")


@functools.lru_cache(maxsize=4096)
def place(region: str) -> tuple[str | None, str | None]:
    """(country, continent) of a region as stored with an offer: `locate`'s answer, (None, None) for a region it
    cannot place. Ingestion stores exactly this beside every offer, and the price stream places an update's
    region with it, so a country or continent filter selects the same offers in search and in the stream."""
    try:
        return locate(region)
    except UnknownRegion:
        return None, None


# ---- places as people name them (the chat extractor) ------------------------------------------------
# Country names, demonyms and common short forms -> ISO2 (every country in CONTINENT is reachable).
COUNTRY_WORDS: dict[str, str] = {
    "united states": "US", "usa": "US", "u.s.": "US", "us": "US", "america": "US", "american": "US",
    "canada": "CA", "canadian": "CA", "mexico": "MX", "brazil": "BR", "chile": "CL", "argentina": "AR",
    "peru": "PE", "colombia": "CO", "united kingdom": "GB", "uk": "GB", "britain": "GB", "great britain": "GB",
    "england": "GB", "british": "GB", "ireland": "IE", "irish": "IE", "france": "FR", "french": "FR",
    "germany": "DE", "german": "DE", "netherlands": "NL", "holland": "NL", "dutch": "NL", "belgium": "BE",
    "switzerland": "CH", "swiss": "CH", "austria": "AT", "italy": "IT", "italian": "IT", "spain": "ES",
    "spanish": "ES", "portugal": "PT", "sweden": "SE", "swedish": "SE", "norway": "NO", "norwegian": "NO",
    "finland": "FI", "finnish": "FI", "denmark": "DK", "iceland": "IS", "poland": "PL", "polish": "PL",
    "czechia": "CZ", "czech republic": "CZ", "hungary": "HU", "romania": "RO", "bulgaria": "BG",
    "estonia": "EE", "latvia": "LV", "lithuania": "LT", "slovakia": "SK", "slovenia": "SI", "croatia": "HR",
    "greece": "GR", "ukraine": "UA", "serbia": "RS", "luxembourg": "LU", "japan": "JP", "japanese": "JP",
    "south korea": "KR", "korea": "KR", "taiwan": "TW", "hong kong": "HK", "china": "CN", "singapore": "SG",
    "india": "IN", "indonesia": "ID", "malaysia": "MY", "thailand": "TH", "vietnam": "VN", "philippines": "PH",
    "israel": "IL", "uae": "AE", "united arab emirates": "AE", "saudi arabia": "SA", "qatar": "QA",
    "bahrain": "BH", "turkey": "TR", "australia": "AU", "australian": "AU", "new zealand": "NZ",
    "south africa": "ZA", "nigeria": "NG", "morocco": "MA", "egypt": "EG", "kenya": "KE", "russia": "RU",
    "north macedonia": "MK", "macau": "MO", "oman": "OM", "kazakhstan": "KZ", "senegal": "SN",
}
# Cities with GPU data centres in the bundled catalogs -> ISO2.
CITY_WORDS: dict[str, str] = {
    "frankfurt": "DE", "berlin": "DE", "munich": "DE", "hamburg": "DE", "london": "GB", "manchester": "GB",
    "paris": "FR", "amsterdam": "NL", "dublin": "IE", "zurich": "CH", "milan": "IT", "madrid": "ES",
    "stockholm": "SE", "oslo": "NO", "helsinki": "FI", "warsaw": "PL", "copenhagen": "DK", "reykjavik": "IS",
    "new york": "US", "virginia": "US", "ohio": "US", "oregon": "US", "california": "US", "texas": "US",
    "dallas": "US", "houston": "US", "chicago": "US", "seattle": "US", "los angeles": "US",
    "san francisco": "US", "silicon valley": "US", "atlanta": "US", "salt lake city": "US", "kansas city": "US",
    "montreal": "CA", "toronto": "CA", "vancouver": "CA", "sao paulo": "BR", "tokyo": "JP", "osaka": "JP",
    "seoul": "KR", "mumbai": "IN", "delhi": "IN", "sydney": "AU", "melbourne": "AU", "jakarta": "ID",
    "tel aviv": "IL", "dubai": "AE", "johannesburg": "ZA", "cape town": "ZA",
}
# Continents and broad areas -> continent code.
CONTINENT_WORDS: dict[str, str] = {
    "europe": "EU", "european": "EU", "eu": "EU", "emea": "EU", "north america": "NA", "asia": "AS",
    "asian": "AS", "apac": "AS", "asia pacific": "AS", "south america": "SA", "latin america": "SA",
    "latam": "SA", "africa": "AF", "oceania": "OC",
}
# Region-name prefixes people use for an area inside a country ("us-east" = every us-east-* region).
AREA_PREFIXES: dict[str, str] = {
    "us-east": "US", "us-west": "US", "us-central": "US", "us-south": "US", "eu-west": "IE", "eu-central": "DE",
    "eu-north": "SE", "eu-south": "IT", "europe-west": "NL", "europe-north": "FI", "asia-east": "TW",
    "asia-northeast": "JP", "asia-southeast": "SG", "ap-northeast": "JP", "ap-southeast": "SG", "ap-south": "IN",
}


def is_region(name: str) -> bool:
    """True when `name` is a provider region `locate` knows (not a country or city word)."""
    try:
        locate(name)
    except UnknownRegion:
        return False
    return name.strip().lower() not in GLOBAL_REGIONS


CONTINENT_CODES = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")


def place_filter(place: str) -> tuple[str, str]:
    """Which filter a user's place word means: ('continent', 'EU') for `eu`, ('country', 'DE') for `de`,
    else ('region', place) for a provider region name such as `us-east-1` (search and stream alike)."""
    p = place.strip()
    if p.upper() in CONTINENT_CODES:
        return "continent", p.upper()
    if re.fullmatch(r"[A-Za-z]{2}", p) and p.upper() in CONTINENT:
        return "country", p.upper()
    return "region", p
