"""Every string the console shows has its Swahili: the templates' `_()` and `ngettext()` texts, the
page titles and notices, and every field and value name a form or a page puts in words."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po
from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLNonNull

from api.graphql.schema import build_schema
from console import i18n, pages
from console.forms import input_type

TEMPLATES = Path(pages.__file__).parent / "templates"
CATALOG = Path(i18n.__file__).parent / "locale" / "sw" / "LC_MESSAGES" / "messages.po"


def shown() -> set[str]:
    """The msgids of everything the console can show."""
    found: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        source = template.read_text()
        found.update(re.findall(r'_\("((?:[^"\\]|\\.)+)"', source))
        found.update(m for pair in re.findall(r'ngettext\("([^"]+)", "([^"]+)"', source) for m in pair)
    found.update(action.title for action in pages.ACTIONS.values())
    found.update(pages.SHOWN_ONCE.values())
    found.update(pages.NOTICES.values())
    found.update({"This form has expired", "Open the page again and resend the form."})
    schema = build_schema(production=False)._schema
    for mutation in pages.ACTIONS:
        stack = [input_type(schema, mutation)]
        while stack:
            shape = stack.pop()
            for name, spec in shape.fields.items():
                found.add(i18n.humanize(name))
                inner = spec.type.of_type if isinstance(spec.type, GraphQLNonNull) else spec.type
                while hasattr(inner, "of_type"):
                    inner = inner.of_type
                if isinstance(inner, GraphQLInputObjectType):
                    stack.append(inner)
    for type_ in schema.type_map.values():
        if isinstance(type_, GraphQLEnumType) and not type_.name.startswith("__"):
            found.update(i18n.humanize(value) for value in type_.values)
    return found


def test_every_shown_string_has_its_swahili() -> None:
    with CATALOG.open("rb") as po:
        catalog = read_po(po, locale="sw")
    translated = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id and m.string
                  and (m.string if isinstance(m.string, str) else all(m.string))}
    plural_ids = {m.id[1] for m in catalog if m.id and not isinstance(m.id, str)}
    missing = sorted(shown() - translated - plural_ids)
    assert not missing, "no Swahili for:\n" + "\n".join(missing)


def test_translations_keep_their_placeholders() -> None:
    with CATALOG.open("rb") as po:
        catalog = read_po(po, locale="sw")
    for message in catalog:
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        wanted = set(re.findall(r"%\(\w+\)[sd]", ids[-1]))
        for string in strings:
            assert set(re.findall(r"%\(\w+\)[sd]", string)) == wanted, message.id
