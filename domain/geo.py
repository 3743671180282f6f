"""Region names of every source -> (country ISO 3166-1 alpha-2, continent code).

Continents: AF, AS, EU, NA, OC, SA. `locate(region)` understands AWS ('eu-west-2', local zones
'us-east-1-atl-1', Wavelength 'eu-west-2-wl1-lon1'), GCP ('europe-west4'), Azure ('westeurope'),
Shadeform ('kansascity-usa-2'), Vast.ai geolocation ('Texas, US', ', US', 'Czechia, CZ, EU') and the
multi-region marker 'global' (-> (None, None)). An unknown region raises `UnknownRegion`.
"""
from __future__ import annotations

import re

__all__ = ["UnknownRegion", "locate", "CONTINENT", "GLOBAL_REGIONS"]


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
    if re.fullmatch(r"us-[a-z]+\d+", low):  # GCP us-central1, us-east4, us-south1, ...
        return _country("US")
    m = re.fullmatch(r"[a-z]+-([a-z]+)-\d+", low)  # Shadeform '<city>-<country>-<n>'
    if m and m.group(1) in _COUNTRY_NAME:
        return _country(_COUNTRY_NAME[m.group(1)])
    raise UnknownRegion(f"unknown region {region!r}")


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
