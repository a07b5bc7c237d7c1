"""Compiled reads: a read (referrals, survivors, the directory, records by id, and their care) becomes ONE
statement that builds the response's `data` as JSON text inside PostgreSQL (each object written as
json_build_object writes it, by concatenation: JsonText; a correlated sub-select with ORDER BY / LIMIT per
list or connection, keyset cursors, totalCount and pageInfo only when asked).

Nothing here decides who sees what: the conditions come from db/scopes.py, the SQL rendering of
domain/policy.py's row scopes and CATEGORY_GRANTS (`referral_visible`, `category_visible`), the very
functions the stores use, compiled once per shape with the principal's values left as parameters.
Care rows follow policy.care_rows (the category decides; under the partner's own referrals only its
own rows), goals and milestones only while the survivor's data key lives (db/care.py).

Sealed free text cannot be opened in PostgreSQL (the master key never goes there): it leaves as a
marker object `{"\\u0001" : "<master key id> <wrapped key> <survivor> <aad> <ciphertext>"}`, which
api/graphql/compiler.py replaces in the text by the opened value. No response key can start with
U+0001 (GraphQL names cannot), and a string value is always quoted, so a marker cannot be forged.

Statement text is made once per (document, operation, shape) by the caller: every principal value
and every argument is a `$name` token here, numbered into a bind parameter by `Renderer.statement`.
"""
# S608: the text built here holds names of this module and GraphQL response keys (names by the
# grammar, quoted as SQL strings all the same); every value the client or the principal brings is bound.
# ruff: noqa: S608

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BooleanClauseList
from sqlalchemy.sql.util import ClauseAdapter
from sqlalchemy.types import DateTime, Uuid

from db.directory import CAPACITY_RANK, counselor_rows, organization_conditions, organization_rows
from db.referrals import needs_assignment_of
from db.scopes import (
    birth_year_shown,
    care_visible,
    category_visible,
    consent_visible,
    referral_visible,
    survivor_visible,
)
from db.survivors import search_conditions
from db.tables import CareGoal, Consent, CounselingSession, Milestone, Organization, Referral, Survivor, SurvivorKey
from domain.consent import AGE_BANDS, OLDEST_BAND
from domain.enums import CapacityStatus, DataCategory, ReferralStatus
from domain.kenya import COUNTIES
from domain.policy import DirectoryScope, RowScope, Side


class JsonText(str):
    """SQL whose value is JSON already written as text (an object, a list, a marker), or NULL for null.

    Why text rather than PostgreSQL's json: json_build_object and json_agg look up each argument's type on
    every call; writing objects and lists by concatenation instead saved ~9 % of the dashboard statement's
    time, byte for byte the same answer (README, benchmark, seventh round). Any other SQL value in an object
    or list is written by to_json, as json_build_object writes it."""


DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
# What a non-null object the caller is not shown renders as: the compiler sees it and steps aside, so the
# resolver path reports the error as it does (a key no response can hold, as the sealed markers).
MISSING = JsonText("'{\"\\u0002\" : true}'")
KEY = SurvivorKey.__table__.alias("k")  # type: ignore[attr-defined]
# What Survivor objects read of a survivor's row.
SURVIVOR_COLUMNS = ("id", "pseudonym", "birth_year", "sex", "county", "languages", "risk_level", "version",
                    "erased_at", "legal_hold_at", "legal_hold_reason", "erasure_requested_at", "erasure_reason")
_TOKEN = re.compile(r"\$([a-z][a-z0-9_]*)")

# What this module can render, by GraphQL type: everything else goes to the resolver path. Audited reads
# (identity, notes, assessments, concerns) are absent on purpose (README, "Compiled reads").
RENDERABLE: Mapping[str, frozenset[str]] = {
    "Query": frozenset({"referrals", "node", "nodes", "viewer", "survivors", "organizations"}),
    "OrganizationConnection": frozenset({"edges", "pageInfo", "totalCount"}),
    "OrganizationEdge": frozenset({"cursor", "node"}),
    "Counselor": frozenset({"id", "displayName", "openCaseload"}),
    "SurvivorConnection": frozenset({"edges", "pageInfo", "totalCount"}),
    "SurvivorEdge": frozenset({"cursor", "node"}),
    "SurvivorDataProtection": frozenset({"legalHold", "erasureRequestedAt", "erasureReason"}),
    "LegalHold": frozenset({"since", "reason"}),
    "Viewer": frozenset({"clientId", "roles", "scopes", "organization", "user"}),
    "ReferralConnection": frozenset({"edges", "pageInfo", "totalCount"}),
    "ReferralEdge": frozenset({"cursor", "node"}),
    "CounselingSessionConnection": frozenset({"edges", "pageInfo", "totalCount"}),
    "CounselingSessionEdge": frozenset({"cursor", "node"}),
    "PageInfo": frozenset({"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}),
    "Referral": frozenset({"id", "service", "priority", "status", "statusReason", "reason", "respondBy", "overdue",
                           "outcome", "createdAt", "updatedAt", "version", "survivor", "sessions", "goals",
                           "milestones", "history", "assignedCounselor", "referringOrganization",
                           "receivingOrganization", "consent"}),
    "Consent": frozenset({"id", "purposes", "dataCategories", "givenBy", "childAssent", "validFrom", "validUntil",
                          "status", "withdrawnAt", "withdrawalReason", "formVersion", "language", "witness", "version",
                          "recipient", "survivor"}),
    "Organization": frozenset({"id", "name", "kind", "counties", "countyNames", "languages", "services", "minAge",
                               "maxAge", "capacityStatus", "openSlots", "active", "version", "counselors"}),
    "StaffUser": frozenset({"id", "displayName", "roles", "active", "deactivatedAt", "version", "email",
                            "deactivationReason", "organization"}),
    "ReferralStatusChange": frozenset({"from", "to", "at", "reason", "actor"}),
    "Survivor": frozenset({"id", "pseudonym", "birthYear", "ageBand", "sex", "county", "countyName", "languages",
                           "riskLevel", "version", "erasedAt", "dataProtection", "consents", "referrals", "goals"}),
    "CounselingSession": frozenset({"id", "startedAt", "durationMinutes", "modality", "sessionType", "attendance",
                                    "version", "referral", "counselor"}),
    "CareGoal": frozenset({"id", "domain", "description", "targetDate", "lifecycleStatus", "achievementStatus",
                           "version", "survivor", "referral", "history"}),
    "GoalProgress": frozenset({"at", "achievementStatus", "note"}),
    "Milestone": frozenset({"id", "title", "achievedOn", "note", "referral", "goal"}),
}


@dataclass(frozen=True, slots=True)
class Pick:
    """One key of a response object: `name` of the read model under `key`, its own picks if an object.
    `path` names where its arguments are found at run time (RunValues.args)."""

    key: str
    name: str
    path: str = ""
    picks: tuple[Pick, ...] = ()


@dataclass(frozen=True, slots=True)
class RunValues:
    """What one run binds: the caller's row scope (values, never text) and each field's arguments."""

    scope: RowScope
    args: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Principal-level decisions of domain/policy.py the fields need: "staff_details" (an administrator sees
    # a staff account's e-mail and deactivation reason).
    grants: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL text with `$1..$n`, and how to get each parameter from a run's values."""

    sql: str
    getters: tuple[Callable[[RunValues], Any], ...]

    def parameters(self, values: RunValues) -> list[Any]:
        return [get(values) for get in self.getters]


# The care records `node` reads: their table, the data category that shows them, whether their text is sealed.
CARE_RECORDS: Mapping[str, tuple[Any, DataCategory, bool]] = {
    "CounselingSession": (CounselingSession, DataCategory.SESSION_ATTENDANCE, False),
    "CareGoal": (CareGoal, DataCategory.ASSESSMENTS, True),
    "Milestone": (Milestone, DataCategory.ASSESSMENTS, True),
}

# Arguments whose value, not only whether it was given, shapes the statement: the record type `node` reads.
SHAPING = frozenset({"type"})


def shape_of(values: RunValues) -> tuple[Any, ...]:
    """The parts of a run that change the statement's text: the scope's side and which of its persons are
    set, which arguments were given (their values are parameters; booleans and SHAPING ones choose text),
    and the principal's grants."""
    s = values.scope
    args = tuple(sorted((path, tuple(sorted(
        f"{k}={v}" if isinstance(v, bool) or k in SHAPING else k for k, v in given.items() if v is not None)))
        for path, given in values.args.items()))
    return s.side, s.case_manager_id is not None, s.counselor_id is not None, s.purposes, args, values.grants


# ----------------------------------------------------------------------------- rendering


_SCOPE_GETTERS: Mapping[str, Callable[[RunValues], Any]] = {
    "org": lambda v: v.scope.organization_id,
    "case_manager": lambda v: v.scope.case_manager_id,
    "counselor": lambda v: v.scope.counselor_id,
    "at": lambda v: v.scope.at,
}


def _token_scope(scope: RowScope) -> RowScope:
    """The scope with its values as tokens, for db/scopes.py's conditions."""
    return RowScope(
        side=scope.side,
        organization_id=literal_column("$org::uuid", Uuid()) if scope.organization_id is not None else None,  # type: ignore[arg-type]
        case_manager_id=literal_column("$case_manager::uuid", Uuid()) if scope.case_manager_id else None,  # type: ignore[arg-type]
        counselor_id=literal_column("$counselor::uuid", Uuid()) if scope.counselor_id else None,  # type: ignore[arg-type]
        at=literal_column("$at::timestamptz", DateTime(timezone=True)),  # type: ignore[arg-type]
        purposes=scope.purposes,
    )


def _sql(element: Any) -> str:
    return str(element.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True}))


def _conjuncts(conditions: list[ColumnElement[bool]]) -> Iterator[ColumnElement[bool]]:
    """The conditions as one flat AND: each term of a nested AND on its own."""
    for condition in conditions:
        if isinstance(condition, BooleanClauseList) and condition.operator is operators.and_:
            yield from _conjuncts(list(condition.clauses))
        else:
            yield condition


def _reads(condition: ColumnElement[bool], table: Any) -> bool:
    """Whether the condition (its sub-selects included) reads a column of `table`."""
    return any(getattr(element, "table", None) is table for element in visitors.iterate(condition))


def _json_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _json(value: str) -> str:
    """A member's or element's value as JSON text, never NULL (a null is `null`)."""
    return f"coalesce({value if isinstance(value, JsonText) else f'to_json({value})::text'}, 'null')"


def _quoted(value: str) -> JsonText:
    """A computed value made only of characters JSON writes as they are (a global id: base64url; an instant:
    digits, `-:.+T`) as a JSON string, without to_json's type look-up."""
    return JsonText(f"""('"' || ({value}) || '"')""")


def _constant(value: str) -> JsonText:
    """A fixed string (a __typename) as a JSON string."""
    return JsonText(_json_text(json.dumps(value)))


def _members(pairs: Iterable[tuple[str, str]]) -> JsonText:
    """An object as json_build_object writes one: `{"key" : value, "key2" : value2}`."""
    parts: list[str] = []
    separator = "{"
    for key, value in pairs:
        parts += [_json_text(f"{separator}{json.dumps(key)} : "), _json(value)]
        separator = ", "
    return JsonText("(" + " || ".join(parts) + " || '}')" if parts else "'{}'")


def _list(element: str, order: str, source: str) -> JsonText:
    """A list as json_agg writes one (`[a, b]`, `[]` when empty): `element` of each row of `source` (its FROM
    and WHERE), in `order`."""
    return JsonText(f"coalesce((SELECT '[' || string_agg({_json(element)}, ', ' ORDER BY {order}) || ']' "
                    f"{source}), '[]')")


def _json_array(column: str) -> JsonText:
    """A text[] column as a JSON array written as `json_agg` writes one (`["a", "b"]`, in order; null for a
    null array), the style of every answer (`to_json` would write `["a","b"]`)."""
    return JsonText(f"CASE WHEN {column} IS NULL THEN NULL ELSE "
                    f"{_list('x.v', 'x.n', f'FROM unnest({column}) WITH ORDINALITY AS x(v, n)')} END")


# The columns `Renderer._with_key` adds: a statement that never mentions them reads no key.
KEY_COLUMNS = ("k_master", "k_wrapped")
# A referral page's columns that only some fields read (a category's decision, a sealed text): a page that no
# field reads them from leaves them out, so PostgreSQL neither prepares nor evaluates them (a referral by id
# 0.365 -> 0.348 ms; README, benchmark). Every read of one is qualified (`p.sees_sessions`).
OPTIONAL_COLUMNS = ("sees_summary", "sees_sessions", "sees_assessments", "status_reason_enc", "reason_enc",
                    "outcome_enc")
Unread = frozenset[str]


@dataclass(frozen=True, slots=True)
class _Keyed:
    """A CTE as it reads with its survivors' keys, and without, leaving out the optional columns unread."""

    keyed: Callable[[Unread], str]
    bare: Callable[[Unread], str]

    def text(self, keyed: bool, unread: Unread = frozenset()) -> str:
        return (self.keyed if keyed else self.bare)(unread)


class Renderer:
    """Renders one operation's picks for one shape; `statement()` numbers the tokens."""

    def __init__(self, values: RunValues) -> None:
        self.values = values
        self.scope = _token_scope(values.scope)
        self.args: dict[str, Callable[[RunValues], Any]] = {}
        self.ctes: list[str | _Keyed] = []
        self.pages: list[str] = []  # the CTEs of the roots' rows, with their survivors' keys when read
        # Whether every record asked for by id (`node`, `nodes`, a survivorId filter) was found: one that shows
        # nothing is answered, and audited, by the resolver path.
        self.found_all: list[str] = []

    def given(self, path: str, name: str) -> bool:
        value = self.values.args.get(path, {}).get(name)
        return value is not None

    def arg(self, path: str, name: str, cast: str) -> str:
        token = "a" + str(len(self.args))
        key = (path, name)
        for existing, getter in self.args.items():
            if getattr(getter, "key", None) == key:
                return f"${existing}::{cast}"

        def get(values: RunValues) -> Any:
            return values.args[path][name]

        get.key = key  # type: ignore[attr-defined]
        self.args[token] = get
        return f"${token}::{cast}"

    def statement(self, roots: tuple[Pick, ...]) -> Statement:
        """The statement: its first column the response's `data` as JSON text, its second the data keys of
        the survivors whose sealed text it holds (`{"<survivor>": "<master key id> <wrapped key>"}`): every
        sealed field is under a survivor of a root's rows (a referral's, or the survivor herself)."""
        body = _members((p.key, self._root(p, i)) for i, p in enumerate(roots))
        # Third: whether every `node` and `nodes` found its records (one not shown is audited by the resolver
        # path).
        found = " AND ".join(self.found_all) or "true"
        # The survivors' keys are read only when something reads them (a sealed field's marker, a list shown
        # only while the key lives, a sealed care record found only while its key lives): a referral's status
        # and its survivor's pseudonym need no key, and the statement then reads none (nor pays row security
        # on them). Any mention keeps them all.
        always = [cte for cte in self.ctes if isinstance(cte, str)]
        keyed = any(column in text for text in (body, found, *always) for column in KEY_COLUMNS)
        whole = [cte.text(keyed) if isinstance(cte, _Keyed) else cte for cte in self.ctes]

        def unread(index: int) -> Unread:
            """The optional columns nothing but the CTE itself reads."""
            others = [body, found, *whole[:index], *whole[index + 1:]]
            return frozenset(column for column in OPTIONAL_COLUMNS
                             if not any(re.search(rf"\.{column}\b", text) for text in others))

        ctes = [cte.text(keyed, unread(i)) if isinstance(cte, _Keyed) else cte for i, cte in enumerate(self.ctes)]
        pages = " UNION ".join(f"SELECT survivor_id, k_master, k_wrapped FROM {name}" for name in self.pages)
        keys = (f"(SELECT json_object_agg(ks.survivor_id, ks.k_master || ' ' || {_b64('ks.k_wrapped')}) "
                f"FROM ({pages}) ks WHERE ks.k_wrapped IS NOT NULL)::text") if pages and keyed else "NULL::text"
        sql = ("WITH " + ", ".join(ctes) + " " if ctes else "") + f"SELECT {body}, {keys}, {found}"
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        numbered = _TOKEN.sub(number, sql)
        getters = tuple(_SCOPE_GETTERS[n] if n in _SCOPE_GETTERS else self.args[n] for n in names)
        return Statement(sql=numbered, getters=getters)

    # ------------------------------------------------------------------ roots

    def _root(self, pick: Pick, index: int) -> JsonText:
        if pick.name == "referrals":
            return self._referral_connection(pick, index)
        if pick.name == "node":
            return self._node(pick, index)
        if pick.name == "viewer":
            return self._viewer(pick)
        if pick.name == "survivors":
            return self._survivor_connection(pick, index)
        if pick.name == "organizations":
            return self._organization_connection(pick, index)
        if pick.name == "nodes":
            return self._nodes(pick, index)
        raise ValueError(pick.name)

    def _viewer(self, pick: Pick) -> JsonText:
        """Who is calling, from the validated token (values bound), its organization and its account."""
        path = pick.path
        return self._object(pick.picks, {
            "__typename": lambda _p: _constant("Viewer"),
            "clientId": lambda _p: self.arg(path, "client_id", "text"),
            "roles": lambda _p: self.arg(path, "roles", "json"),
            "scopes": lambda _p: self.arg(path, "scopes", "json"),
            "organization": lambda sub: self._organization(sub.picks, self.arg(path, "organization_id", "uuid")),
            "user": lambda sub: JsonText(f"(SELECT {self._staff(sub.picks, 'u')} FROM staff_user u "
                                         f"WHERE u.id = {self.arg(path, 'user_id', 'uuid')})"),
        })

    def _referral_rows(self, path: str, *, match: Callable[[Any], ColumnElement[bool]] | None = None,
                       ) -> tuple[Any, Any, list[ColumnElement[bool]], Any]:
        """The visible referrals (and their consents) a root reads, with the root's filters (`match`: those
        whose id it matches)."""
        r = Referral.__table__.alias("r")  # type: ignore[attr-defined]
        c = Consent.__table__.alias("c")  # type: ignore[attr-defined]
        conditions: list[ColumnElement[bool]] = [referral_visible(self.scope, r, c)]  # `_rows` joins c
        if match is not None:
            conditions.append(match(r.c.id))
        if self.given(path, "statuses"):
            conditions.append(r.c.status == func.any(literal_column(self.arg(path, "statuses", "text[]"))))
        if self.given(path, "receiving_organization_id"):
            conditions.append(r.c.receiving_organization_id == literal_column(
                self.arg(path, "receiving_organization_id", "uuid")))
        if self.given(path, "survivor_id"):
            conditions.append(r.c.survivor_id == literal_column(self.arg(path, "survivor_id", "uuid")))
        if self.given(path, "assigned_to"):
            conditions.append(r.c.assigned_counselor_id == literal_column(self.arg(path, "assigned_to", "uuid")))
        overdue = self.values.args.get(path, {}).get("overdue")
        if overdue is not None:
            late = and_(r.c.status == ReferralStatus.REQUESTED.value, r.c.respond_by < self.scope.at)
            conditions.append(late if overdue else ~late)
        if self.given(path, "updated_since"):
            conditions.append(r.c.last_activity_at >= literal_column(
                self.arg(path, "updated_since", "timestamptz")))
        unassigned = self.values.args.get(path, {}).get("needs_assignment")
        if unassigned is not None:
            condition = needs_assignment_of(r)
            conditions.append(condition if unassigned else ~condition)
        sort = r.c.last_activity_at if self.given(path, "updated_since") else r.c.created_at
        return r, c, conditions, sort

    def _referral_columns(self, r: Any, c: Any) -> list[Any]:
        """The referral's columns, its survivor's live key and the category decisions the fields need."""
        org = self.scope.organization_id
        at = self.scope.at

        def sees(category: DataCategory) -> ColumnElement[bool]:
            return or_(*[and_(column == org, category_visible(side, category, consent=c, referral_status=r.c.status,
                                                               at=at))
                         for side, column in ((Side.REFERRER, r.c.referring_organization_id),
                                              (Side.RECEIVER, r.c.receiving_organization_id))])

        return [
            r.c.id, r.c.survivor_id, r.c.referring_organization_id, r.c.receiving_organization_id, r.c.service,
            r.c.priority, r.c.status, r.c.status_reason_enc, r.c.reason_enc, r.c.outcome_enc, r.c.respond_by,
            r.c.created_at, r.c.last_activity_at, r.c.version, r.c.assigned_counselor_id, r.c.consent_id,
            sees(DataCategory.CASE_SUMMARY).label("sees_summary"),
            sees(DataCategory.SESSION_ATTENDANCE).label("sees_sessions"),
            sees(DataCategory.ASSESSMENTS).label("sees_assessments"),
        ]

    @staticmethod
    def _rows(r: Any, c: Any, columns: list[Any], conditions: list[ColumnElement[bool]],
              order: tuple[Any, ...] = ()) -> Any:
        """The referral `r` joined to its consent `c` (a whole SELECT, so that SQLAlchemy correlates the
        scope's sub-selects with `r`), in `order` when one is given.

        Ordered, the conditions on the referral alone are asked in a sub-select sorted first, and the consent
        is joined to the sorted rows: under a page's LIMIT PostgreSQL then reads the consents of the page's
        rows only (a nested loop it stops at the limit) rather than of every matching referral before the
        sort (a counselor's dashboard: ~52 consent lookups instead of ~130; README, benchmark). The same
        conditions, so the same rows."""
        if not order:
            return select(*columns).select_from(r.join(c, c.c.id == r.c.consent_id)).where(*conditions)
        alone: list[ColumnElement[bool]] = []
        with_consent: list[ColumnElement[bool]] = []
        for condition in _conjuncts(conditions):
            (with_consent if _reads(condition, c) else alone).append(condition)
        ordered = select(r).where(*alone).order_by(*order).subquery("rs")
        adapt = ClauseAdapter(ordered).traverse
        return (select(*[adapt(column) for column in columns])
                .select_from(ordered.join(c, c.c.id == ordered.c.consent_id))
                .where(*[adapt(condition) for condition in with_consent]).order_by(*[adapt(key) for key in order]))

    @staticmethod
    def _with_key(rows: Any) -> Any:
        """The rows (a page, limited) with their survivor's live data key: joined after the limit, so row
        security on the keys is paid for the rows shown only."""
        shown = rows.subquery("shown")
        return select(shown, KEY.c.master_key_id.label("k_master"), KEY.c.wrapped_key.label("k_wrapped")).select_from(
            shown.outerjoin(KEY, and_(KEY.c.survivor_id == shown.c.survivor_id, KEY.c.destroyed_at.is_(None))))

    def _keyed(self, name: str, rows: Callable[[Unread], Any]) -> None:
        """The CTE `name` of `rows` (without the optional columns unread) with their survivors' keys, or without
        when no field reads a key (`statement`)."""
        self.ctes.append(_Keyed(lambda unread: f"{name} AS ({_sql(self._with_key(rows(unread)))})",
                                lambda unread: f"{name} AS ({_sql(rows(unread))})"))
        self.pages.append(name)

    def _after(self, path: str, sort: Any, row_id: Any, sort_type: str = "timestamptz") -> list[ColumnElement[bool]]:
        """The keyset condition of a connection's `after` cursor (none without one): (sort, id) after it."""
        if not self.given(path, "after_sort"):
            return []
        return [tuple_(sort, row_id) > tuple_(literal_column(self.arg(path, "after_sort", sort_type)),
                                              literal_column(self.arg(path, "after_id", "uuid")))]

    def _root_page(self, pick: Pick, index: int, kind: str, *,
                   rows: Callable[[list[Any], list[Any], tuple[Any, ...]], Any],
                   columns: list[Any], conditions: list[ColumnElement[bool]], sort: Any, row_id: Any,
                   node: Callable[[Pick], str], cursor: Callable[[str], str] | None = None,
                   sort_type: str = "timestamptz", keyed: bool = True) -> JsonText:
        """A root connection: its page (and one row more) as a CTE (`keyed`: with the survivors' keys),
        ordered by (sort, id) as db/cursors.fetch_page orders it; `rows(columns, conditions, order)` is its SELECT.
        totalCount counts every row the conditions keep, cursor or not (fetch_page's)."""
        path = pick.path
        after = self._after(path, sort, row_id, sort_type)
        first = self.arg(path, "first", "int")
        numbered = [*columns, sort.label("_sort"), func.row_number().over(order_by=(sort, row_id)).label("_n")]
        if not after and any(sub.name == "totalCount" for sub in pick.picks):
            numbered.append(func.count().over().label("_total"))
        name = f"page{index}"
        def page(unread: Unread) -> Any:
            return rows(_read(numbered, unread), [*conditions, *after], (sort, row_id)).limit(
                literal_column(f"{first} + 1"))

        if keyed:
            self._keyed(name, page)
        else:
            self.ctes.append(f"{name} AS ({_sql(page(frozenset()))})")

        def total() -> str:
            if after:
                return f"({_sql(rows([func.count()], conditions, ()))})"
            return f"coalesce((SELECT p._total FROM {name} p WHERE p._n = 1), 0)"

        return self._connection(
            pick, kind, cursor=cursor or _key_cursor, rows=name, first=first, previous="true" if after else "false",
            total=total, node=node,
            edges=lambda edge: _list(edge, "p._n", f"FROM {name} p WHERE p._n <= {first}"))

    def _referral_connection(self, pick: Pick, index: int) -> JsonText:
        r, c, conditions, sort = self._referral_rows(pick.path)
        if self.given(pick.path, "survivor_id"):
            # an empty page for a survivor named: the resolver path answers, and audits her if unseen
            first = self.arg(pick.path, "first", "int")
            self.found_all.append(f"EXISTS (SELECT 1 FROM page{index} p WHERE p._n <= {first})")
        return self._root_page(pick, index, "Referral",
                               rows=lambda cols, where, order: self._rows(r, c, cols, where, order),
                               columns=self._referral_columns(r, c), conditions=conditions, sort=sort,
                               row_id=r.c.id, node=lambda n: self._referral(n.picks, "p"))

    def _connection(self, pick: Pick, kind: str, *, cursor: Callable[[str], str], rows: str, first: str,
                    previous: str, total: Callable[[], str], node: Callable[[Pick], str],
                    edges: Callable[[str], str], alias: str = "p") -> JsonText:
        """A Relay connection of `kind`: `edges(edge)` aggregates the page's edges (rows aliased `alias`);
        `rows` is the page and one row more, numbered `_n` (pageInfo)."""
        parts: list[tuple[str, str]] = []
        for sub in pick.picks:
            if sub.name == "edges":
                edge = self._object(sub.picks, {
                    "cursor": lambda _p: cursor(alias), "node": node,
                    "__typename": lambda _p: _constant(f"{kind}Edge"),
                })
                parts.append((sub.key, edges(edge)))
            elif sub.name == "pageInfo":
                parts.append((sub.key, self._page_info(sub.picks, rows=rows, first=first, cursor=cursor,
                                                       previous=previous)))
            elif sub.name == "totalCount":
                parts.append((sub.key, total()))
            elif sub.name == "__typename":
                parts.append((sub.key, _constant(f"{kind}Connection")))
        return _members(parts)

    def _survivor_connection(self, pick: Pick, index: int) -> JsonText:
        """`survivors`: those the row scope shows (db.scopes.survivor_visible), with the root's filters, by
        registration (db/survivors.py's page)."""
        path = pick.path
        sv = Survivor.__table__.alias("sv")  # type: ignore[attr-defined]
        conditions: list[ColumnElement[bool]] = [survivor_visible(self.scope, sv)]
        if self.given(path, "county"):
            conditions.append(sv.c.county == literal_column(self.arg(path, "county", "text")))
        if self.given(path, "risk_level"):
            conditions.append(sv.c.risk_level == literal_column(self.arg(path, "risk_level", "text")))
        pseudonym: Any = literal_column(self.arg(path, "pseudonym", "text")) if self.given(path, "pseudonym") else None
        conditions += search_conditions(  # db/survivors.py's: a pseudonym's start, or a phone by blind index
            sv, pseudonym=pseudonym,
            phone=(literal_column(self.arg(path, "phone_organization_id", "uuid")),
                   literal_column(self.arg(path, "phone_index", "bytea")),
                   literal_column(self.arg(path, "guardian_phone_index", "bytea")))
            if self.given(path, "phone_index") else None)
        held = self.values.args.get(path, {}).get("under_legal_hold")
        if held is not None:
            conditions.append(sv.c.legal_hold_at.is_not(None) if held else sv.c.legal_hold_at.is_(None))
        if self.given(path, "statuses"):
            r = Referral.__table__.alias("filter_referral")  # type: ignore[attr-defined]
            conditions.append(select(r.c.id).where(
                r.c.survivor_id == sv.c.id, referral_visible(self.scope, r),
                r.c.status == func.any(literal_column(self.arg(path, "statuses", "text[]")))).exists())
        # with their keys (_root_page): the statement's second column opens their consents' sealed text
        return self._root_page(pick, index, "Survivor",
                               rows=lambda cols, where, order: select(*cols).select_from(sv).where(*where)
                               .order_by(*order),
                               columns=[*[sv.c[n] for n in SURVIVOR_COLUMNS], sv.c.id.label("survivor_id")],
                               conditions=conditions, sort=sv.c.created_at, row_id=sv.c.id,
                               node=lambda n: self._survivor(n.picks, "p"))

    def _node(self, pick: Pick, index: int) -> JsonText:
        """`node(id:)`: the record of the id's type, as its by-id read shows it (null when not shown)."""
        kind = self.values.args[pick.path]["type"]
        picks = next(p.picks for p in pick.picks if p.name == kind)
        name = f"page{index}"
        render = self._records(name, kind, pick.path,
                               lambda column: column == literal_column(self.arg(pick.path, "id", "uuid")))
        self.found_all.append(f"EXISTS (SELECT 1 FROM {name})")
        return JsonText(f"(SELECT {render(picks, 'p')} FROM {name} p)")

    def _nodes(self, pick: Pick, index: int) -> JsonText:
        """`nodes(ids:)`: per type asked, the records shown (one CTE each); the list in the order asked,
        null where an id names nothing."""
        path = pick.path
        cases = []
        for kind in (k for k in (p.name for p in pick.picks) if self.given(path, f"ids_{k}")):
            name = f"page{index}_{kind.lower()}"
            ids = self.arg(path, f"ids_{kind}", "uuid[]")
            render = self._records(name, kind, path, _any_of(ids))
            picks = next(p.picks for p in pick.picks if p.name == kind)
            self.found_all.append(f"(SELECT count(*) FROM {name}) = cardinality({ids})")
            cases.append(f"WHEN {_json_text(kind)} THEN (SELECT {render(picks, 'p')} FROM {name} p WHERE p.id = x.id)")
        element = JsonText(f"CASE x.t {' '.join(cases)} END" if cases else "NULL::text")
        return _list(element, "x.n", f"FROM unnest({self.arg(path, 'types', 'text[]')}, "
                                     f"{self.arg(path, 'ids', 'uuid[]')}) WITH ORDINALITY AS x(t, id, n)")

    def _records(self, name: str, kind: str, path: str,
                 match: Callable[[Any], ColumnElement[bool]]) -> Callable[[tuple[Pick, ...], str], JsonText]:
        """The CTE `name` of the records of `kind` whose id `match`es, as its by-id read shows them (with their
        survivors' keys where they hold sealed text); returns how one is rendered."""
        if kind == "Organization":
            rows, _ = organization_rows(DirectoryScope(include_inactive=bool(self.values.args[path].get("inactive"))))
            table = Organization.__table__  # type: ignore[attr-defined]
            self.ctes.append(f"{name} AS ({_sql(rows.where(match(table.c.id)))})")
            return lambda found, p: self._organization_object(found, p)
        render: Callable[[tuple[Pick, ...], str], JsonText]
        if kind in CARE_RECORDS:
            # care.sessions_by_id, goals_by_id, milestones_by_id: db.scopes.care_visible for the record's
            # category; goals and milestones only while the survivor's data key lives (their text is sealed)
            table, category, sealed = CARE_RECORDS[kind]
            x = table.__table__.alias("x")
            rows = select(x).where(match(x.c.id), care_visible(self.scope, x, category))
            if sealed:  # always with its key (found only while it lives), which keeps every key (`statement`)
                self.ctes.append(f"{name} AS ({_sql(self._with_key(rows).where(KEY.c.wrapped_key.is_not(None)))})")
                self.pages.append(name)
            else:
                self._keyed(name, lambda _unread: rows)
            if kind == "CounselingSession":
                return self._session
            record = self._goal if kind == "CareGoal" else self._milestone
            return lambda shown, p: record(shown, p, p)  # the row carries its survivor's key
        found: Callable[[Unread], Any]
        if kind == "Referral":
            r, c, conditions, _sort = self._referral_rows(path, match=match)
            columns = self._referral_columns(r, c)

            def found(unread: Unread) -> Any:
                return self._rows(r, c, _read(columns, unread), conditions)

            render = self._referral
        elif kind == "Survivor":
            sv = Survivor.__table__.alias("sv")  # type: ignore[attr-defined]
            survivors = select(*[sv.c[n] for n in SURVIVOR_COLUMNS], sv.c.id.label("survivor_id")).where(
                match(sv.c.id), survivor_visible(self.scope, sv))
            found = lambda _unread: survivors  # noqa: E731
            render = self._survivor
        else:
            cn = Consent.__table__.alias("cn")  # type: ignore[attr-defined]
            consents = select(cn).where(match(cn.c.id), consent_visible(self.scope, cn))
            found = lambda _unread: consents  # noqa: E731
            render = lambda shown, p: self._consent_object(shown, p, p)  # noqa: E731 (the row carries its key)
        self._keyed(name, found)
        return render

    @staticmethod
    def _page_info(picks: tuple[Pick, ...], *, rows: str, first: str, cursor: Callable[[str], str],
                   previous: str) -> JsonText:
        """pageInfo of the rows `rows` (a CTE or a sub-select: the page and one row more, numbered `_n`)."""
        fields = {
            "hasNextPage": f"(SELECT count(*) FROM {rows} n_) > {first}",
            "hasPreviousPage": previous,
            "startCursor": f"(SELECT {cursor('e_')} FROM {rows} e_ WHERE e_._n = 1)",
            "endCursor": f"(SELECT {cursor('e_')} FROM {rows} e_ WHERE e_._n <= {first} ORDER BY e_._n DESC LIMIT 1)",
            "__typename": _constant("PageInfo"),
        }
        return _members((p.key, fields[p.name]) for p in picks)

    @staticmethod
    def _object(picks: tuple[Pick, ...], fields: Mapping[str, Callable[[Pick], str]]) -> JsonText:
        return _members((p.key, fields[p.name](p)) for p in picks)

    # ------------------------------------------------------------------ records

    def _referral(self, picks: tuple[Pick, ...], p: str) -> JsonText:
        def sealed(column: str, shown: str = "") -> Callable[[Pick], str]:
            marker = _sealed(f"{p}.{column}_enc", p, "referral", column, f"{p}.id")
            return lambda _pick: JsonText(f"CASE WHEN {shown} THEN {marker} END") if shown else marker

        plain: dict[str, Callable[[Pick], str]] = {
            "__typename": lambda _p: _constant("Referral"),
            "id": lambda _p: _quoted(f"pamoja_global_id('Referral', {p}.id)"),
            "service": lambda _p: f"{p}.service", "priority": lambda _p: f"{p}.priority",
            "status": lambda _p: f"{p}.status", "version": lambda _p: f"{p}.version",
            "statusReason": sealed("status_reason"), "reason": sealed("reason", f"{p}.sees_summary"),
            "outcome": sealed("outcome"),
            "respondBy": lambda _p: _quoted(f"pamoja_instant({p}.respond_by)"),
            "overdue": lambda _p: f"({p}.status = 'REQUESTED' AND {p}.respond_by IS NOT NULL AND "
                                  f"$at::timestamptz > {p}.respond_by)",
            "createdAt": lambda _p: _quoted(f"pamoja_instant({p}.created_at)"),
            "updatedAt": lambda _p: _quoted(f"pamoja_instant({p}.last_activity_at)"),
            "survivor": lambda pick: JsonText(f"(SELECT {self._survivor(pick.picks, 's', p)} FROM survivor s "
                                              f"WHERE s.id = {p}.survivor_id)"),
            "sessions": lambda pick: self._sessions(pick, p),
            "goals": lambda pick: self._care_list(pick, p, "care_goal", "g", "g.created_at, g.id", self._goal),
            "milestones": lambda pick: self._care_list(pick, p, "milestone", "m",
                                                       "m.achieved_on, m.created_at, m.id", self._milestone),
            "referringOrganization": lambda pick: self._organization(pick.picks, f"{p}.referring_organization_id"),
            "receivingOrganization": lambda pick: self._organization(pick.picks, f"{p}.receiving_organization_id"),
            "consent": lambda pick: self._consent(pick.picks, p),
            "assignedCounselor": lambda pick: JsonText(f"(SELECT {self._staff(pick.picks, 'u')} FROM staff_user u "
                                                       f"WHERE u.id = {p}.assigned_counselor_id)"),
            "history": lambda pick: _list(self._change(pick.picks, "h", p), "h.id",
                                          f"FROM referral_status_change h WHERE h.referral_id = {p}.id"),
        }
        return self._object(picks, plain)

    def _consent(self, picks: tuple[Pick, ...], p: str) -> JsonText:
        """The referral's consent, as the caller's row scope shows consents (db.scopes.consent_visible); the
        field is non-null, so a consent not shown is the MISSING marker (the resolver path answers)."""
        cn = Consent.__table__.alias("cn")  # type: ignore[attr-defined]
        shown = _sql(select(cn).where(cn.c.id == literal_column(f"{p}.consent_id"), consent_visible(self.scope, cn)))
        return JsonText(f"coalesce((SELECT {self._consent_object(picks, 'q', p)} FROM ({shown}) q), {MISSING})")

    def _consent_object(self, picks: tuple[Pick, ...], q: str, p: str) -> JsonText:
        """A consent row `q`; `p` the row carrying its survivor's key (its referral, or the row itself)."""
        at = "$at::timestamptz"
        status = (f"CASE WHEN {q}.withdrawn_at IS NOT NULL AND {q}.withdrawn_at <= {at} THEN 'WITHDRAWN' "
                  f"WHEN {q}.valid_until IS NOT NULL AND {at} >= {q}.valid_until THEN 'EXPIRED' ELSE 'ACTIVE' END")
        fields: dict[str, Callable[[Pick], str]] = {
            "__typename": lambda _p: _constant("Consent"),
            "id": lambda _p: _quoted(f"pamoja_global_id('Consent', {q}.id)"),
            "purposes": lambda _p: _json_array(f"{q}.purposes"),
            "dataCategories": lambda _p: _json_array(f"{q}.data_categories"),
            "givenBy": lambda _p: f"{q}.given_by", "childAssent": lambda _p: f"{q}.child_assent",
            "validFrom": lambda _p: _quoted(f"pamoja_instant({q}.valid_from)"),
            "validUntil": lambda _p: _quoted(f"pamoja_instant({q}.valid_until)"),
            # domain.consent.status_at; a consent marked WITHDRAWN stays so whatever its instant
            "status": lambda _p: f"CASE WHEN {q}.status = 'WITHDRAWN' THEN 'WITHDRAWN' ELSE {status} END",
            "withdrawnAt": lambda _p: _quoted(f"pamoja_instant({q}.withdrawn_at)"),
            "withdrawalReason": lambda _p: _sealed(f"{q}.withdrawal_reason_enc", p, "consent", "withdrawal_reason",
                                                   f"{q}.id"),
            "formVersion": lambda _p: f"{q}.form_version", "language": lambda _p: f"{q}.language",
            "witness": lambda _p: _sealed(f"{q}.witness_enc", p, "consent", "witness", f"{q}.id"),
            "version": lambda _p: f"{q}.version",
            "recipient": lambda pick: self._organization(pick.picks, f"{q}.recipient_id"),
            "survivor": lambda pick: self._survivor_by_id(pick.picks, f"{q}.survivor_id", p),
        }
        return self._object(picks, fields)

    def _organization(self, picks: tuple[Pick, ...], organization_id: str) -> JsonText:
        """An organization referenced by a record the caller sees: the directory's row, inactive ones too
        (partners/directory.organizations_by_id, direct=False), its active services summarised."""
        rows, _ = organization_rows(DirectoryScope(include_inactive=True))
        found = _sql(rows.where(literal_column("organization.id") == literal_column(organization_id)))
        return JsonText(f"(SELECT {self._organization_object(picks, 'o')} FROM ({found}) o)")

    def _organization_connection(self, pick: Pick, index: int) -> JsonText:
        """`organizations`: the directory as partners/directory.list_organizations lists it (inactive ones
        for an administrator, policy.directory_scope), filtered as db/directory.py filters, by name."""
        path = pick.path
        rows, _ = organization_rows(DirectoryScope(include_inactive=bool(self.values.args[path].get("inactive"))))
        conditions = organization_conditions(**{
            name: literal_column(self.arg(path, name, "text")) if self.given(path, name) else None
            for name in ("kind", "service", "county", "language")})
        table = Organization.__table__  # type: ignore[attr-defined]

        def cursor(a: str) -> str:
            return f"pamoja_cursor(pamoja_json_ascii({a}._sort), {a}.id::text)"

        return self._root_page(pick, index, "Organization", rows=lambda cols, where, order: rows.with_only_columns(
            *cols, maintain_column_froms=True).where(*where).order_by(*order), columns=list(rows.selected_columns),
            conditions=conditions, sort=table.c.name, row_id=table.c.id,
            node=lambda n: self._organization_object(n.picks, "p"), cursor=cursor, sort_type="text", keyed=False)

    def _organization_object(self, picks: tuple[Pick, ...], o: str) -> JsonText:
        """An organization from a row of db/directory.organization_rows aliased `o`."""
        capacity = " ".join(f"WHEN {rank} THEN {_json_text(status.value)}" for status, rank in CAPACITY_RANK.items())
        fields: dict[str, Callable[[Pick], str]] = {
            "__typename": lambda _p: _constant("Organization"),
            "id": lambda _p: _quoted(f"pamoja_global_id('Organization', {o}.id)"), "name": lambda _p: f"{o}.name",
            "kind": lambda _p: f"{o}.kind", "counties": lambda _p: _json_array(f"{o}.counties"),
            "countyNames": lambda _p: _list(_county_name("x.code"), "x.n",
                                            f"FROM unnest({o}.counties) WITH ORDINALITY AS x(code, n)"),
            "languages": lambda _p: _json_array(f"{o}.languages"),
            "services": lambda _p: JsonText(f"coalesce({_json_array(f'{o}.services')}, '[]')"),
            "minAge": lambda _p: f"{o}.min_age", "maxAge": lambda _p: f"{o}.max_age",
            "capacityStatus": lambda _p: f"CASE {o}.capacity_rank {capacity} ELSE "
                                         f"{_json_text(CapacityStatus.NO_CAPACITY.value)} END",
            "openSlots": lambda _p: f"{o}.open_slots", "active": lambda _p: f"{o}.active",
            "version": lambda _p: f"{o}.version",
            "counselors": lambda pick: self._counselors(pick, o),
        }
        return self._object(picks, fields)

    def _counselors(self, pick: Pick, o: str) -> JsonText:
        """Organization.counselors: the caller's own partner organization only (policy.may_see_counselors:
        the compiler binds her organization when she may see any), by name (db.directory.counselor_rows)."""
        if not self.given(pick.path, "organization_id"):
            return JsonText("'[]'")
        own: Any = literal_column(self.arg(pick.path, "organization_id", "uuid"))
        rows = _sql(counselor_rows(own).where(own == literal_column(f"{o}.id")))
        found = self._object(pick.picks, {
            "__typename": lambda _p: _constant("Counselor"),
            "id": lambda _p: _quoted("pamoja_global_id('StaffUser', w.id)"), "displayName": lambda _p: "w.display_name",
            "openCaseload": lambda _p: "w.open_referrals",
        })
        return _list(found, "w.display_name, w.id", f"FROM ({rows}) w")

    def _staff(self, picks: tuple[Pick, ...], u: str) -> JsonText:
        """A staff account referenced by a record the caller sees (domain/use_cases/staff.py, direct=False)."""
        details = "staff_details" in self.values.grants
        return self._object(picks, {
            "__typename": lambda _p: _constant("StaffUser"),
            "id": lambda _p: _quoted(f"pamoja_global_id('StaffUser', {u}.id)"),
            "displayName": lambda _p: f"{u}.display_name",
            "roles": lambda _p: _json_array(f"{u}.roles"), "active": lambda _p: f"{u}.active",
            "deactivatedAt": lambda _p: _quoted(f"pamoja_instant({u}.deactivated_at)"),
            "version": lambda _p: f"{u}.version",
            "email": lambda _p: f"{u}.email" if details else "NULL::text",
            "deactivationReason": lambda _p: f"{u}.deactivation_reason" if details else "NULL::text",
            "organization": lambda pick: self._organization(pick.picks, f"{u}.organization_id"),
        })

    def _change(self, picks: tuple[Pick, ...], h: str, p: str) -> JsonText:
        """A status change of the referral: part of it (the history of a referral shown is shown)."""
        return self._object(picks, {
            "__typename": lambda _p: _constant("ReferralStatusChange"),
            "from": lambda _p: f"{h}.from_status", "to": lambda _p: f"{h}.to_status",
            "at": lambda _p: _quoted(f"pamoja_instant({h}.at)"),
            "reason": lambda _p: _sealed(f"{h}.reason_enc", p, "referral_status_change", "reason", f"{h}.id"),
            "actor": lambda _p: f"{h}.actor",
        })

    def _survivor_by_id(self, picks: tuple[Pick, ...], survivor_id: str, key: str) -> JsonText:
        """A record's survivor (a consent's, a goal's): as her by-id read shows her (db.scopes.survivor_visible);
        not shown, the resolver path reports the non-null field. `key` carries her data key."""
        shown = Survivor.__table__.alias("shown_survivor")  # type: ignore[attr-defined]
        visible = _sql(select(shown.c.id).where(shown.c.id == literal_column("cs.id"),
                                                survivor_visible(self.scope, shown)))
        return JsonText(f"coalesce((SELECT {self._survivor(picks, 'cs', key)} FROM survivor cs "
                        f"WHERE cs.id = {survivor_id} AND EXISTS ({visible})), {MISSING})")

    def _referral_by_id(self, picks: tuple[Pick, ...], referral_id: str, *, required: bool) -> JsonText:
        """A care record's referral, as its by-id read shows it (db.scopes.referral_visible, with its survivor's
        key); not shown: null, or for a non-null field the resolver path reports it."""
        r, c, conditions, _sort = self._referral_rows("", match=lambda column: column == literal_column(referral_id))
        rows = _sql(self._with_key(self._rows(r, c, self._referral_columns(r, c), conditions)))
        found = JsonText(f"(SELECT {self._referral(picks, 'rr')} FROM ({rows}) rr)")
        return JsonText(f"coalesce({found}, {MISSING})") if required else found

    def _goal_by_id(self, picks: tuple[Pick, ...], goal_id: str, key: str) -> JsonText:
        """A milestone's goal, as goals_by_id shows it (db.scopes.care_visible, the key alive), else null."""
        g = CareGoal.__table__.alias("bg")  # type: ignore[attr-defined]
        rows = _sql(select(g).where(g.c.id == literal_column(goal_id),
                                    care_visible(self.scope, g, DataCategory.ASSESSMENTS)))
        return JsonText(f"(SELECT {self._goal(picks, 'bg', key)} FROM ({rows}) bg WHERE {key}.k_wrapped IS NOT NULL)")

    def _survivor(self, picks: tuple[Pick, ...], s: str, key: str | None = None) -> JsonText:
        """A survivor row `s`; `key` the row carrying her data key (`survivor_id`, `k_wrapped`), `s` itself
        when it does."""
        key = key or s
        shown = Survivor.__table__.alias("shown_survivor")  # type: ignore[attr-defined]
        birth_year = "(" + _sql(select(case((birth_year_shown(self.scope, shown), shown.c.birth_year))).where(
            shown.c.id == literal_column(f"{s}.id"))) + ")"
        fields: dict[str, Callable[[Pick], str]] = {
            "__typename": lambda _p: _constant("Survivor"),
            "id": lambda _p: _quoted(f"pamoja_global_id('Survivor', {s}.id)"),
            "pseudonym": lambda _p: f"{s}.pseudonym", "birthYear": lambda _p: birth_year,
            "ageBand": lambda _p: _age_band(f"{s}.birth_year"), "sex": lambda _p: f"{s}.sex",
            "county": lambda _p: f"{s}.county", "countyName": lambda _p: _county_name(f"{s}.county"),
            "languages": lambda _p: _json_array(f"{s}.languages"), "riskLevel": lambda _p: f"{s}.risk_level",
            "version": lambda _p: f"{s}.version", "erasedAt": lambda _p: _quoted(f"pamoja_instant({s}.erased_at)"),
            "dataProtection": lambda pick: self._data_protection(pick.picks, s),
            "consents": lambda pick: self._consents_of(pick.picks, s),
            "referrals": lambda pick: self._referrals_of(pick, s),
            "goals": lambda pick: self._goals_of(pick.picks, s, key),
        }
        return self._object(picks, fields)

    def _consents_of(self, picks: tuple[Pick, ...], s: str) -> JsonText:
        """A survivor's consents the row scope shows (db.scopes.consent_visible), oldest first."""
        cn = Consent.__table__.alias("cn")  # type: ignore[attr-defined]
        shown = _sql(self._with_key(select(cn).where(cn.c.survivor_id == literal_column(f"{s}.id"),
                                                     consent_visible(self.scope, cn))))
        return _list(self._consent_object(picks, "q", "q"), "q.created_at, q.id", f"FROM ({shown}) q")

    def _referrals_of(self, pick: Pick, s: str) -> JsonText:
        """A survivor's referrals the row scope shows, a page each (db/referrals.py's by_survivor); totalCount
        counts every one of them, cursor or not, as a root connection does."""
        path = pick.path
        r = Referral.__table__.alias("sr")  # type: ignore[attr-defined]
        c = Consent.__table__.alias("sc")  # type: ignore[attr-defined]
        shown = [r.c.survivor_id == literal_column(f"{s}.id"), referral_visible(self.scope, r)]
        after = self._after(path, r.c.created_at, r.c.id)
        conditions = [*shown, *after]
        first = self.arg(path, "first", "int")
        columns = [*self._referral_columns(r, c), r.c.created_at.label("_sort"),
                   func.row_number().over(order_by=(r.c.created_at, r.c.id)).label("_n"),
                   func.count().over().label("_total")]
        limited = self._rows(r, c, columns, conditions, (r.c.created_at, r.c.id)).limit(
            literal_column(f"{first} + 1"))
        rows = f"({_sql(self._with_key(limited))})"
        return self._connection(
            pick, "Referral", cursor=_key_cursor, rows=rows, first=first,
            previous="true" if self.given(path, "after_sort") else "false",
            total=lambda: f"({_sql(self._rows(r, c, [func.count()], shown))})" if after else
            f"coalesce((SELECT e_._total FROM {rows} e_ WHERE e_._n = 1), 0)",
            node=lambda n: self._referral(n.picks, "sp"), alias="sp",
            edges=lambda edge: _list(edge, "sp._n", f"FROM {rows} sp WHERE sp._n <= {first}"))

    def _data_protection(self, picks: tuple[Pick, ...], s: str) -> JsonText:
        """The survivor's legal hold and waiting erasure: her own organization only (db/survivors.py shows it
        on the referring side), null for a partner."""
        if self.values.scope.side is not Side.REFERRER:
            return JsonText("NULL::text")

        def hold(pick: Pick) -> JsonText:
            found = self._object(pick.picks, {"__typename": lambda _p: _constant("LegalHold"),
                                              "since": lambda _p: _quoted(f"pamoja_instant({s}.legal_hold_at)"),
                                              "reason": lambda _p: f"{s}.legal_hold_reason"})
            return JsonText(f"CASE WHEN {s}.legal_hold_at IS NOT NULL AND {s}.legal_hold_reason IS NOT NULL "
                            f"THEN {found} END")
        return self._object(picks, {
            "__typename": lambda _p: _constant("SurvivorDataProtection"), "legalHold": hold,
            "erasureRequestedAt": lambda _p: _quoted(f"pamoja_instant({s}.erasure_requested_at)"),
            "erasureReason": lambda _p: f"{s}.erasure_reason",
        })

    def _goals_of(self, picks: tuple[Pick, ...], s: str, key: str) -> JsonText:
        """Survivor.goals: across her referrals the caller sees, as db/care.py's goals_by_survivor reads them
        (db.scopes.care_visible for the assessments category), while her data key lives; oldest first."""
        g = CareGoal.__table__.alias("sg")  # type: ignore[attr-defined]
        rows = _sql(select(g).where(g.c.survivor_id == literal_column(f"{s}.id"),
                                    care_visible(self.scope, g, DataCategory.ASSESSMENTS)))
        return _list(self._goal(picks, "sg", key), "sg.created_at, sg.id",
                     f"FROM ({rows}) sg WHERE {key}.k_wrapped IS NOT NULL")

    def _care_rows(self, p: str, alias: str, sees: str) -> str:
        """policy.care_rows: the category decides; under the partner's own referrals, its own rows only."""
        return f"{alias}.referral_id = {p}.id AND {p}.{sees} AND " \
               f"({alias}.organization_id = $org::uuid OR {p}.receiving_organization_id <> $org::uuid)"

    def _sessions(self, pick: Pick, p: str) -> JsonText:
        path = pick.path
        first = self.arg(path, "first", "int")
        after = ""
        if self.given(path, "after_sort"):  # newest first: the rows before the cursor
            after = f" AND (x.started_at, x.id) < ({self.arg(path, 'after_sort', 'timestamptz')}, " \
                    f"{self.arg(path, 'after_id', 'uuid')})"
        visible = self._care_rows(p, "x", "sees_sessions")
        columns = "x.id, x.started_at, x.duration_minutes, x.modality, x.session_type, x.attendance, x.version, " \
                  "x.referral_id, x.counselor_id"
        order = "x.started_at DESC, x.id DESC"
        # The page and one row more, numbered (pageInfo); the page alone, without a window (edges).
        rows = f"(SELECT {columns}, row_number() OVER (ORDER BY {order}) AS _n FROM counseling_session x " \
               f"WHERE {visible}{after} ORDER BY {order} LIMIT {first} + 1)"
        page = f"(SELECT {columns} FROM counseling_session x WHERE {visible}{after} ORDER BY {order} LIMIT {first})"

        def cursor(a: str) -> str:
            return f"pamoja_cursor(pamoja_instant({a}.started_at), {a}.id::text)"

        def total() -> str:  # every session of the referral the caller sees, cursor or not
            return f"(SELECT count(*) FROM counseling_session x WHERE {visible})"

        return self._connection(
            pick, "CounselingSession", cursor=cursor, rows=rows, first=first,
            previous=f"{p}.sees_sessions" if after else "false", total=total,
            node=lambda n: self._session(n.picks, "q"), alias="q",
            edges=lambda edge: _list(edge, "q.started_at DESC, q.id DESC", f"FROM {page} q"))

    def _session(self, picks: tuple[Pick, ...], x: str) -> JsonText:
        """A session row `x` (its text is not sealed: no survivor's key needed)."""
        return self._object(picks, {
            "__typename": lambda _p: _constant("CounselingSession"),
            "id": lambda _p: _quoted(f"pamoja_global_id('CounselingSession', {x}.id)"),
            "startedAt": lambda _p: _quoted(f"pamoja_instant({x}.started_at)"),
            "durationMinutes": lambda _p: f"{x}.duration_minutes", "modality": lambda _p: f"{x}.modality",
            "sessionType": lambda _p: f"{x}.session_type", "attendance": lambda _p: f"{x}.attendance",
            "version": lambda _p: f"{x}.version",
            "referral": lambda pick: self._referral_by_id(pick.picks, f"{x}.referral_id", required=True),
            # the counselor is part of the session shown (staff_by_id, direct=False)
            "counselor": lambda pick: JsonText(f"coalesce((SELECT {self._staff(pick.picks, 'u')} FROM staff_user u "
                                               f"WHERE u.id = {x}.counselor_id), {MISSING})"),
        })

    def _care_list(self, pick: Pick, p: str, table: str, alias: str, order: str,
                   render: Callable[[tuple[Pick, ...], str, str], JsonText]) -> JsonText:
        visible = self._care_rows(p, alias, "sees_assessments")
        return _list(render(pick.picks, alias, p), order,
                     f"FROM {table} {alias} WHERE {visible} AND {p}.k_wrapped IS NOT NULL")

    def _goal(self, picks: tuple[Pick, ...], g: str, p: str) -> JsonText:
        return self._object(picks, {
            "__typename": lambda _p: _constant("CareGoal"),
            "id": lambda _p: _quoted(f"pamoja_global_id('CareGoal', {g}.id)"), "domain": lambda _p: f"{g}.domain",
            "description": lambda _p: _sealed(f"{g}.description_enc", p, "care_goal", "description", f"{g}.id"),
            "targetDate": lambda _p: f"{g}.target_date", "lifecycleStatus": lambda _p: f"{g}.lifecycle_status",
            "achievementStatus": lambda _p: f"{g}.achievement_status", "version": lambda _p: f"{g}.version",
            "survivor": lambda pick: self._survivor_by_id(pick.picks, f"{g}.survivor_id", p),
            "referral": lambda pick: self._referral_by_id(pick.picks, f"{g}.referral_id", required=False),
            "history": lambda pick: self._progress(pick.picks, g, p),
        })

    def _progress(self, picks: tuple[Pick, ...], g: str, p: str) -> JsonText:
        """CareGoal.history: every achievement status the goal has had, oldest first (part of the goal)."""
        found = self._object(picks, {
            "__typename": lambda _p: _constant("GoalProgress"),
            "at": lambda _p: _quoted("pamoja_instant(gp.at)"), "achievementStatus": lambda _p: "gp.achievement_status",
            "note": lambda _p: _sealed("gp.note_enc", p, "goal_progress", "note", "gp.id"),
        })
        return _list(found, "gp.id", f"FROM goal_progress gp WHERE gp.goal_id = {g}.id")

    def _milestone(self, picks: tuple[Pick, ...], m: str, p: str) -> JsonText:
        return self._object(picks, {
            "__typename": lambda _p: _constant("Milestone"),
            "id": lambda _p: _quoted(f"pamoja_global_id('Milestone', {m}.id)"),
            "title": lambda _p: _sealed(f"{m}.title_enc", p, "milestone", "title", f"{m}.id"),
            "achievedOn": lambda _p: f"{m}.achieved_on",
            "note": lambda _p: _sealed(f"{m}.note_enc", p, "milestone", "note", f"{m}.id"),
            "referral": lambda pick: self._referral_by_id(pick.picks, f"{m}.referral_id", required=True),
            "goal": lambda pick: JsonText(f"CASE WHEN {m}.goal_id IS NOT NULL THEN "
                                          f"{self._goal_by_id(pick.picks, f'{m}.goal_id', p)} END"),
        })


def _any_of(ids: str) -> Callable[[Any], ColumnElement[bool]]:
    """An id column's test against the array `ids` (a bound uuid[])."""
    return lambda column: column == func.any(literal_column(ids))


def _key_cursor(a: str) -> str:
    """api.graphql.relay.encode_cursor of the key db/cursors.fetch_page gives a row: (str(sort), str(id))."""
    return f"pamoja_cursor(pamoja_instant({a}._sort, ' '), {a}.id::text)"


def _sealed(column: str, p: str, table: str, name: str, row_id: str) -> JsonText:
    """A sealed column as a marker for api/graphql/compiler.py to open: the survivor whose key opens it
    (Statement's second column holds the keys), the binding and the ciphertext; NULL stays null, and a
    destroyed key gives a null marker (nothing to open)."""
    opened_by = (f"CASE WHEN {p}.k_wrapped IS NOT NULL THEN {p}.survivor_id::text || ' ' || '{table}.{name}:' || "
                 f"{row_id}::text || ' ' || {_b64(column)} END")
    return JsonText(f"""CASE WHEN {column} IS NULL THEN NULL ELSE '{{"\\u0001" : ' || """
                    f"coalesce({_quoted(opened_by)}, 'null') || '}}' END")


def _read(columns: list[Any], unread: Unread) -> list[Any]:
    """The columns less those no field reads (OPTIONAL_COLUMNS)."""
    return [column for column in columns if getattr(column, "name", None) not in unread]


def _b64(value: str) -> str:
    """Base64 on one line. replace, not translate: translate walks the text as multibyte characters, and its
    cost showed in PostgreSQL's profile of the dashboard (0.4 µs more per value)."""
    return f"replace(encode({value}, 'base64'), E'\\n', '')"


def _age_band(birth_year: str) -> str:
    """domain.consent.age_band in SQL, from the same table of bands, at the scope's day (UTC)."""
    age = f"greatest(extract(year FROM $at::timestamptz AT TIME ZONE 'UTC')::int - {birth_year} - 1, 0)"
    cases = " ".join(f"WHEN {age} <= {upper} THEN {_json_text(band)}" for upper, band in AGE_BANDS)
    return f"CASE WHEN {birth_year} IS NULL THEN NULL {cases} ELSE {_json_text(OLDEST_BAND)} END"


def _county_name(code: str) -> str:
    """domain.kenya.county_name in SQL, from the same table."""
    cases = " ".join(f"WHEN {_json_text(c)} THEN {_json_text(n)}" for c, n in COUNTIES.items())
    return f"CASE {code} {cases} END"

