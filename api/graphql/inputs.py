"""One check of every value a caller sends, before any use case sees it.

Whatever the field, no text may hold control or text-direction characters (nor NUL or lone
surrogates, which PostgreSQL cannot store), and instants and dates must lie in 1900-2999, instants
with a UTC offset. Checking the whole input here rather than field by field in each use case means
a field added tomorrow is covered too; the use cases keep their own, field-specific rules (length,
single line, formats). A refusal is INVALID naming the field: a userError in a mutation,
BAD_USER_INPUT in a query.
"""

from __future__ import annotations

from datetime import date, datetime

from strawberry.types.base import get_object_definition
from strawberry.utils.str_converters import to_camel_case

from domain.use_cases.common import check_date, check_instant, refuse_unsafe_characters


def check_input(value: object, field: tuple[str, ...]) -> None:
    """Raise InvalidInput for the first value under `value` the API cannot hold; `field` is its path."""
    if isinstance(value, str):
        refuse_unsafe_characters(value, field=field)
    elif isinstance(value, datetime):
        check_instant(value, field=field)
    elif isinstance(value, date):
        check_date(value, field=field)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_input(item, (*field, str(index)))
    elif (definition := get_object_definition(value)) is not None and definition.is_input:
        for member in definition.fields:
            check_input(getattr(value, member.python_name), (*field, member.graphql_name or
                                                               to_camel_case(member.python_name)))
