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

from domain.errors import FieldChecks
from domain.use_cases.common import check_date, check_instant, refuse_unsafe_characters


def check_input(value: object, field: tuple[str, ...]) -> None:
    """Raise InvalidInput for every value under `value` the API cannot hold (all of them at once, so
    the caller fixes them in one round trip); `field` is the path of `value`."""
    checks = FieldChecks()
    _check(value, field, checks)
    checks.done()


def _check(value: object, field: tuple[str, ...], checks: FieldChecks) -> None:
    if isinstance(value, str):
        checks.check(lambda: refuse_unsafe_characters(value, field=field))
    elif isinstance(value, datetime):
        checks.check(lambda: check_instant(value, field=field))
    elif isinstance(value, date):
        checks.check(lambda: check_date(value, field=field))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, (*field, str(index)), checks)
    elif (definition := get_object_definition(value)) is not None and definition.is_input:
        for member in definition.fields:
            _check(getattr(value, member.python_name), (*field, member.graphql_name or
                                                        to_camel_case(member.python_name)), checks)
