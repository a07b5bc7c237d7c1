"""Local facts of Kenya that the API must get right: counties, languages, phone numbers, time zone.

Error messages here never echo the value they refuse, because the value may be a survivor's or a
guardian's phone number or place (rule 4).
"""

import re
from collections.abc import Mapping
from datetime import timedelta, timezone
from types import MappingProxyType

from domain.errors import InvalidInput

# East Africa Time: UTC+3 all year, no daylight saving.
EAT = timezone(timedelta(hours=3), "EAT")

# The 47 counties in the official order (First Schedule of the Constitution of Kenya, 2010).
COUNTIES: Mapping[str, str] = MappingProxyType(
    {
        "001": "Mombasa",
        "002": "Kwale",
        "003": "Kilifi",
        "004": "Tana River",
        "005": "Lamu",
        "006": "Taita-Taveta",
        "007": "Garissa",
        "008": "Wajir",
        "009": "Mandera",
        "010": "Marsabit",
        "011": "Isiolo",
        "012": "Meru",
        "013": "Tharaka-Nithi",
        "014": "Embu",
        "015": "Kitui",
        "016": "Machakos",
        "017": "Makueni",
        "018": "Nyandarua",
        "019": "Nyeri",
        "020": "Kirinyaga",
        "021": "Murang'a",
        "022": "Kiambu",
        "023": "Turkana",
        "024": "West Pokot",
        "025": "Samburu",
        "026": "Trans-Nzoia",
        "027": "Uasin Gishu",
        "028": "Elgeyo-Marakwet",
        "029": "Nandi",
        "030": "Baringo",
        "031": "Laikipia",
        "032": "Nakuru",
        "033": "Narok",
        "034": "Kajiado",
        "035": "Kericho",
        "036": "Bomet",
        "037": "Kakamega",
        "038": "Vihiga",
        "039": "Bungoma",
        "040": "Busia",
        "041": "Siaya",
        "042": "Kisumu",
        "043": "Homa Bay",
        "044": "Migori",
        "045": "Kisii",
        "046": "Nyamira",
        "047": "Nairobi",
    }
)


def _name_key(name: str) -> str:
    # Letters only, case-folded: "Taita Taveta", "taita-taveta" and "Muranga" all match their county.
    return "".join(ch for ch in name.casefold() if ch.isalnum())


_CODE_BY_NAME: Mapping[str, str] = MappingProxyType(
    {_name_key(name): code for code, name in COUNTIES.items()} | {_name_key("Nairobi City"): "047"}
)


_COUNTY_NUMBER = re.compile(r"[0-9]{1,3}")


def county_code(value: str, *, field: tuple[str, ...]) -> str:
    """Store the code, show the name: accept either from people, keep only the 3-digit code."""
    text = value.strip()
    if _COUNTY_NUMBER.fullmatch(text):
        code = f"{int(text):03d}"
        if code in COUNTIES:
            return code
    elif (found := _CODE_BY_NAME.get(_name_key(text))) is not None:
        return found
    raise InvalidInput("Not a Kenyan county code (001-047) or county name.", field=field)


def county_name(code: str) -> str:
    """The display name of a stored code; an unknown code is corrupt data, hence ValueError."""
    try:
        return COUNTIES[code]
    except KeyError:
        raise ValueError("Unknown county code.") from None


# Tags Pamoja expects to see; any well-formed tag is accepted, these are for pickers and documentation.
KNOWN_LANGUAGES: Mapping[str, str] = MappingProxyType(
    {
        "sw": "Swahili",
        "en": "English",
        # Mijikenda languages of the coast (ISO 639-3).
        "nyf": "Giriama",
        "dig": "Digo",
        "dug": "Duruma",
        "coh": "Chonyi",
    }
)

# The part of BCP 47 (RFC 5646) a person's language needs: language[-script][-region].
_LANGUAGE_TAG = re.compile(
    r"(?P<language>[A-Za-z]{2,3})(?:-(?P<script>[A-Za-z]{4}))?(?:-(?P<region>[A-Za-z]{2}|[0-9]{3}))?"
)


def normalize_language(tag: str, *, field: tuple[str, ...]) -> str:
    """Canonical case (RFC 5646 2.1.1: sw, Latn, KE) so one language is stored one way and matches."""
    match = _LANGUAGE_TAG.fullmatch(tag.strip())
    if match is None:
        raise InvalidInput("Not a language tag such as sw, en, nyf or sw-KE.", field=field)
    parts = [match["language"].lower()]
    if match["script"]:
        parts.append(match["script"].title())
    if match["region"]:
        parts.append(match["region"].upper())
    return "-".join(parts)


_SEPARATORS = re.compile(r"[\s\-]+")
_KENYAN_SUBSCRIBER = r"[17][0-9]{8}"  # the 9 digits after +254 of a mobile (07xx, 01xx) number
_KENYA_INTERNATIONAL = re.compile(rf"\+?2540?(?P<subscriber>{_KENYAN_SUBSCRIBER})")
_KENYA_NATIONAL = re.compile(rf"0(?P<subscriber>{_KENYAN_SUBSCRIBER})")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")


def normalize_phone(value: str, *, field: tuple[str, ...]) -> str:
    """One spelling per number (E.164), so contact data can be matched and dialled from anywhere.

    Kenyan mobiles are accepted as +2547..., 2547..., 07... (and 01...), and as "+254 07..." since
    people often keep the trunk zero; a +254 number that is not a mobile number is refused as a
    likely typo. Any other E.164 number is kept as is, because a guardian may live abroad.
    """
    text = _SEPARATORS.sub("", value)
    kenyan = _KENYA_INTERNATIONAL.fullmatch(text) or _KENYA_NATIONAL.fullmatch(text)
    if kenyan is not None:
        return "+254" + kenyan["subscriber"]
    if _E164.fullmatch(text) and not text.startswith("+254"):
        return text
    raise InvalidInput("Not a phone number in E.164 form, such as +254712345678.", field=field)
