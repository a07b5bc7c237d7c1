"""English and Swahili for the console: gettext catalogs (console/locale/<lang>/LC_MESSAGES/
messages.po, compiled in memory at start-up by Babel), and dates shown in Africa/Nairobi."""

from __future__ import annotations

import io
from datetime import date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = {"en": "English", "sw": "Kiswahili"}
DEFAULT_LANGUAGE = "en"
NAIROBI = ZoneInfo("Africa/Nairobi")
LOCALE = Path(__file__).parent / "locale"


@cache
def translations(language: str) -> NullTranslations:
    source = LOCALE / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT_LANGUAGE or not source.exists():
        return NullTranslations()
    with source.open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled)


class Speaker:
    """gettext for templates: `_("Hello, %(name)s", name=…)`, `ngettext(one, many, n)` with `%(num)d`."""

    def __init__(self, language: str) -> None:
        self.translations = translations(language)

    def gettext(self, message: str, **values: object) -> str:
        text = self.translations.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, count: int, **values: object) -> str:
        return self.translations.ngettext(singular, plural, count) % {"num": count, **values}


def chosen(language: str | None) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def when(value: str | datetime | None, language: str) -> str:
    """An instant from the API (ISO 8601 with offset) as people on the coast read it."""
    if value is None:
        return ""
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    return format_datetime(instant, "d MMM y, HH:mm", tzinfo=NAIROBI, locale=chosen(language))


def day(value: str | date | None, language: str) -> str:
    if value is None:
        return ""
    parsed = date.fromisoformat(value) if isinstance(value, str) else value
    return format_date(parsed, "medium", locale=chosen(language))


def humanize(name: str) -> str:
    """`durationMinutes` / `PSYCHOSOCIAL_COUNSELING` → "Duration minutes" / "Psychosocial counseling": the
    msgid under which the catalogs translate a field or a value."""
    if name.isupper() or "_" in name:
        words = name.lower().split("_")
    else:
        words, current = [], ""
        for char in name:
            if char.isupper() and current:
                words.append(current)
                current = char.lower()
            else:
                current += char
        words.append(current)
    text = " ".join(w for w in words if w)
    return text[:1].upper() + text[1:]
