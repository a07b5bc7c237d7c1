"""Kenya's counties, language tags and phone numbers, and that refusals never echo the value."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.enums import UserErrorCode
from domain.errors import InvalidInput
from domain.kenya import (
    COUNTIES,
    EAT,
    KNOWN_LANGUAGES,
    county_code,
    county_name,
    normalize_language,
    normalize_phone,
)

FIELD = ("input", "county")

OFFICIAL_ORDER = [
    "Mombasa", "Kwale", "Kilifi", "Tana River", "Lamu", "Taita-Taveta", "Garissa", "Wajir", "Mandera",
    "Marsabit", "Isiolo", "Meru", "Tharaka-Nithi", "Embu", "Kitui", "Machakos", "Makueni", "Nyandarua",
    "Nyeri", "Kirinyaga", "Murang'a", "Kiambu", "Turkana", "West Pokot", "Samburu", "Trans-Nzoia",
    "Uasin Gishu", "Elgeyo-Marakwet", "Nandi", "Baringo", "Laikipia", "Nakuru", "Narok", "Kajiado",
    "Kericho", "Bomet", "Kakamega", "Vihiga", "Bungoma", "Busia", "Siaya", "Kisumu", "Homa Bay", "Migori",
    "Kisii", "Nyamira", "Nairobi",
]  # fmt: skip


def test_all_47_counties_in_official_order():
    assert len(COUNTIES) == 47
    assert list(COUNTIES) == [f"{n:03d}" for n in range(1, 48)]
    assert list(COUNTIES.values()) == OFFICIAL_ORDER


@pytest.mark.parametrize(
    ("code", "name"),
    [("001", "Mombasa"), ("002", "Kwale"), ("003", "Kilifi"), ("006", "Taita-Taveta"), ("047", "Nairobi")],
)
def test_county_name(code, name):
    assert county_name(code) == name


@pytest.mark.parametrize("code", ["1", "000", "048", "Mombasa", ""])
def test_county_name_of_an_unknown_code(code):
    with pytest.raises(ValueError, match="Unknown county code"):
        county_name(code)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("001", "001"),
        ("1", "001"),
        ("01", "001"),
        (" 3 ", "003"),
        ("47", "047"),
        ("047", "047"),
        ("Mombasa", "001"),
        ("mombasa", "001"),
        ("KILIFI", "003"),
        ("  Kwale ", "002"),
        ("Taita-Taveta", "006"),
        ("Taita Taveta", "006"),
        ("taita taveta", "006"),
        ("Tana River", "004"),
        ("Murang'a", "021"),
        ("Muranga", "021"),
        ("Murang\u2019a", "021"),
        ("Tharaka Nithi", "013"),
        ("Elgeyo Marakwet", "028"),
        ("Trans Nzoia", "026"),
        ("Homa Bay", "043"),
        ("Nairobi City", "047"),
    ],
)
def test_county_code(value, expected):
    assert county_code(value, field=FIELD) == expected


@pytest.mark.parametrize(
    "value", ["0", "000", "48", "048", "100", "0001", "Kampala", "Mombasa Island", "", "   ", "Likoni ward 5"]
)
def test_county_code_refuses_without_echo(value):
    with pytest.raises(InvalidInput) as caught:
        county_code(value, field=FIELD)
    assert caught.value.field == FIELD
    assert caught.value.code == UserErrorCode.INVALID
    assert caught.value.message == "Not a Kenyan county code (001-047) or county name."


@pytest.mark.parametrize(("name", "code"), [(name, code) for code, name in COUNTIES.items()])
def test_every_county_name_round_trips(name, code):
    assert county_code(name, field=FIELD) == code
    assert county_code(name.upper(), field=FIELD) == code


LANG = ("input", "languages", "0")


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("sw", "sw"),
        ("SW", "sw"),
        ("en", "en"),
        ("nyf", "nyf"),
        ("Dig", "dig"),
        ("dug", "dug"),
        ("sw-KE", "sw-KE"),
        ("sw-ke", "sw-KE"),
        ("en-GB", "en-GB"),
        ("sw-Latn-KE", "sw-Latn-KE"),
        ("sw-latn", "sw-Latn"),
        ("es-419", "es-419"),
        (" sw ", "sw"),
    ],
)
def test_normalize_language(tag, expected):
    assert normalize_language(tag, field=LANG) == expected


@pytest.mark.parametrize(
    "tag",
    ["", "s", "swahili", "sw_KE", "sw-", "sw-K", "sw-KEN", "sw-Latn-KE-x", "1a", "sw KE", "-sw", "en--GB"],
)
def test_malformed_language_tags(tag):
    with pytest.raises(InvalidInput) as caught:
        normalize_language(tag, field=LANG)
    assert caught.value.field == LANG
    assert caught.value.message == "Not a language tag such as sw, en, nyf or sw-KE."


def test_known_languages_include_the_coast():
    assert {"sw", "en", "nyf", "dig", "dug"} <= set(KNOWN_LANGUAGES)
    assert all(normalize_language(tag, field=LANG) == tag for tag in KNOWN_LANGUAGES)


PHONE = ("input", "guardianPhone")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+254712345678", "+254712345678"),
        ("+254112345678", "+254112345678"),
        ("254712345678", "+254712345678"),
        ("254112345678", "+254112345678"),
        ("0712345678", "+254712345678"),
        ("0110345678", "+254110345678"),
        ("0712 345 678", "+254712345678"),
        ("0712-345-678", "+254712345678"),
        ("+254 712 345 678", "+254712345678"),
        ("+254-712-345-678", "+254712345678"),
        ("+254 0712 345678", "+254712345678"),
        (" +254712345678 ", "+254712345678"),
        # Guardians abroad: any E.164 number is kept.
        ("+447911123456", "+447911123456"),
        ("+44 7911 123456", "+447911123456"),
        ("+255712345678", "+255712345678"),
        ("+12025550123", "+12025550123"),
        ("+97150123", "+97150123"),
        ("+123456789012345", "+123456789012345"),
    ],
)
def test_normalize_phone(value, expected):
    assert normalize_phone(value, field=PHONE) == expected


# Digits chosen not to overlap the example number in the message, so an echo would be caught.
@pytest.mark.parametrize(
    "value",
    [
        "",
        "0798",
        "079876543",
        "07987654321",
        "0898765432",
        "798765432",
        "+25479876543",
        "+2547987654321",
        "+254898765432",
        "+254209876543",
        "254898765432",
        "+0798765432",
        "+9876543",
        "+9876543210987654",
        "0798 765 43a",
        "tel:+254798765432",
        "+254 (0) 798 765 432",
        "0798.765.432",
    ],
)
def test_invalid_phones_are_refused_without_echo(value):
    with pytest.raises(InvalidInput) as caught:
        normalize_phone(value, field=PHONE)
    error = caught.value
    assert error.field == PHONE
    assert error.code == UserErrorCode.INVALID
    assert error.message == "Not a phone number in E.164 form, such as +254712345678."
    digits = "".join(ch for ch in value if ch.isdigit())
    assert len(digits) < 4 or digits not in error.message
    assert len(value) < 4 or value not in str(error)


def test_east_africa_time():
    assert EAT.utcoffset(None) == timedelta(hours=3)
    assert datetime(2025, 1, 1, 3, 0, tzinfo=EAT) == datetime(2025, 1, 1, 0, 0, tzinfo=UTC)
    assert datetime(2025, 7, 1, 12, 0, tzinfo=EAT).isoformat() == "2025-07-01T12:00:00+03:00"
