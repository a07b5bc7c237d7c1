"""The console's pages under /app. Each page is thin: who is signed in, one GraphQL operation run as
them (console/gql.py), a template. Nothing here decides who may see what: a record the person may
not see comes back null from the API, and the page is the same "not found" as for a record that
does not exist. Forms are plain HTML (no JavaScript needed), carry the session's CSRF token, and
every page with survivor data is sent with `Cache-Control: no-store`. URLs carry ids, never names."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from graphql import GraphQLObjectType, GraphQLScalarType, get_named_type
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData

from console import forms, gql, i18n
from console.session import (
    LANGUAGE_COOKIE,
    SignedIn,
    SignInRequired,
    begin_sign_in,
    clear_session_cookie,
    csrf_ok,
    current,
    finish_sign_in,
    set_language,
    sign_out,
)
from domain.enums import ErasureReason, ServiceType

HERE = Path(__file__).parent
TEMPLATES = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")  # a global id's base64url spelling; anything else names nothing
NOTICES = {
    "session-ended": "Your session ended. Sign in again.",
    "sign-in-expired": "That sign-in took too long or was started elsewhere. Sign in again.",
    "sign-in-failed": "Sign-in did not complete. Sign in again.",
    "signed-out": "You are signed out.",
    "no-organization": "No organization is registered yet: the operator runs `pamoja org add` first.",
}


# ----------------------------------------------------------------------------- rendering


def render(request: Request, template: str, *, signed: SignedIn | None, status: int = 200,
           **values: Any) -> HTMLResponse:
    language = signed.language if signed else i18n.chosen(request.cookies.get(LANGUAGE_COOKIE))
    speak = i18n.Speaker(language)
    roles = {role.value for role in signed.principal.roles} if signed else set()
    page = TEMPLATES.get_template(template)
    html = page.render(
        request_path=request.url.path, signed=signed, language=language, languages=i18n.LANGUAGES,
        roles=roles, has=lambda *wanted: bool(roles & set(wanted)), csrf=signed.csrf_token if signed else "",
        ngettext=speak.ngettext, _=speak.gettext,
        when=lambda v: i18n.when(v, language), day=lambda v: i18n.day(v, language), words=i18n.humanize,
        **values)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def not_found(request: Request, signed: SignedIn | None) -> HTMLResponse:
    return render(request, "not_found.html", signed=signed, status=404)


def to_sign_in(reason: str = "") -> RedirectResponse:
    return RedirectResponse("/app/sign-in" + (f"?notice={reason}" if reason in NOTICES else ""), status_code=303)


Page = Callable[[Request, SignedIn], Awaitable[Response]]


def page(handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """Signed in, or sent to sign in; a POST without the session's CSRF token is refused."""
    async def endpoint(request: Request) -> Response:
        try:
            signed = await current(request)
        except SignInRequired as missing:
            return to_sign_in(missing.reason)
        if request.method == "POST":
            form = await request.form()
            if not csrf_ok(signed, form.get("csrf")):
                return render(request, "message.html", signed=signed, status=403,
                              title="This form has expired", message="Open the page again and resend the form.")
        return await handler(request, signed)

    endpoint.__name__ = handler.__name__
    return endpoint


def global_id(value: str | None) -> str | None:
    return value if value is not None and ID.fullmatch(value) else None


def safe_next(value: object, fallback: str = "/app") -> str:
    """Only a path of this console: never another site (an open redirect)."""
    text = value if isinstance(value, str) else ""
    return text if text.startswith("/app") and not text.startswith("//") and "\\" not in text else fallback


# ----------------------------------------------------------------------------- queries

VIEWER = "{ viewer { roles user { id displayName } organization { id name kind } } }"
SURVIVORS = """query($search: String, $after: String) { survivors(first: 25, after: $after, filter: {search: $search}) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { id pseudonym ageBand sex countyName riskLevel } } } }"""
SURVIVOR = """query($id: ID!) { node(id: $id) { ... on Survivor { id pseudonym ageBand birthYear sex countyName
  languages riskLevel version erasedAt dataProtection { legalHold { since reason } erasureRequestedAt }
  consents { id status purposes dataCategories givenBy childAssent validFrom validUntil withdrawnAt version
             recipient { id name } }
  referrals(first: 50) { edges { node { id status service priority overdue updatedAt
                                        receivingOrganization { name } } } } } } }"""
EXPORT = """mutation($id: ID!) { exportSurvivorRecord(input: {survivorId: $id}) {
  document userErrors { field code message } } }"""
DUPLICATES = """query($after: String) { duplicateReviews(first: 50, after: $after, filter: {resolved: false}) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { id matchedOn createdAt version survivor { id pseudonym ageBand countyName }
                 possibleDuplicate { id pseudonym ageBand countyName } } } } }"""
MATCHES = """query($id: ID!, $service: ServiceType!) {
  node(id: $id) { ... on Survivor { id pseudonym consents { status recipient { id } } } }
  partnerMatches(input: {survivorId: $id, service: $service}) {
    organization { id name countyNames languages capacityStatus openSlots } score reasons } }"""
REFERRALS = """query($f: ReferralFilter, $after: String) { referrals(first: 50, after: $after, filter: $f) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { id status service priority overdue respondBy updatedAt survivor { id pseudonym }
                 receivingOrganization { name } assignedCounselor { displayName }
                 safeguardingConcerns { level raisedAt } } } } }"""
COUNT = "query($f: ReferralFilter) { referrals(first: 0, filter: $f) { totalCount } }"
REFERRAL = """query($id: ID!) { viewer { organization { id kind counselors { id displayName openCaseload } } }
  node(id: $id) { ... on Referral { id status statusReason service priority reason respondBy overdue outcome
  createdAt updatedAt version
  survivor { id pseudonym ageBand countyName assessments { id instrument administeredOn overallScore
                                                           meetsRestorationThreshold } }
  referringOrganization { id name } receivingOrganization { id name }
  consent { id status dataCategories validUntil }
  assignedCounselor { id displayName }
  history { from to at reason }
  sessions(first: 50) { edges { node { id startedAt durationMinutes modality sessionType attendance
                                       safeguardingConcern { level raisedAt } } } }
  goals { id domain description targetDate lifecycleStatus achievementStatus version }
  milestones { id title achievedOn note goal { id } }
  safeguardingConcerns { level raisedAt } } } }"""
AUDIT = """query($record: ID, $after: String) { auditEvents(first: 50, after: $after, filter: {recordId: $record}) {
  pageInfo { hasNextPage endCursor } edges { node { seq at actor action recordType recordId purpose outcome } } } }"""
USERS = """query($search: String, $after: String) { staffUsers(first: 50, after: $after, filter: {search: $search}) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { id displayName email roles active version organization { name } } } } }"""
CLIENTS = """{ oauthClients(first: 100) { totalCount edges { node { id clientId name kind authentication scopes
  webhookUrl active version organization { name } } } } }"""
ORGANIZATIONS = """query($kind: OrganizationKind) { organizations(first: 100, filter: {kind: $kind}) {
  edges { node { id name } } } }"""
SERVICES = """{ viewer { organization { id name kind services capacityStatus openSlots } } }"""
INSTRUMENTS = "{ assessmentInstruments { key name scaleMin scaleMax subdomains { key label domain } } }"


def _edges(connection: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [edge["node"] for edge in (connection or {}).get("edges") or []]


# ----------------------------------------------------------------------------- what each form asks


@dataclass(frozen=True)
class Action:
    title: str  # msgid
    fixed: tuple[str, ...]  # ids (and values) taken from the URL, not typed
    back: str  # where to go afterwards: "referral", "survivor", "home"


ACTIONS: dict[str, Action] = {
    "registerSurvivor": Action("Register a survivor", (), "survivor"),
    "recordConsent": Action("Record consent", ("survivorId", "recipientId"), "survivor"),
    "withdrawConsent": Action("Withdraw consent", ("consentId", "expectedVersion", "survivorId"), "survivor"),
    "createReferral": Action("Create and send a referral", ("survivorId", "receivingOrganizationId", "service"),
                             "referral"),
    "sendReferral": Action("Send the referral", ("referralId", "expectedVersion"), "referral"),
    "acceptReferral": Action("Accept the referral", ("referralId", "expectedVersion"), "referral"),
    "rejectReferral": Action("Reject the referral", ("referralId", "expectedVersion"), "referral"),
    "assignCounselor": Action("Assign a counselor", ("referralId", "expectedVersion"), "referral"),
    "startReferral": Action("Start care", ("referralId", "expectedVersion"), "referral"),
    "holdReferral": Action("Put on hold", ("referralId", "expectedVersion"), "referral"),
    "resumeReferral": Action("Resume care", ("referralId", "expectedVersion"), "referral"),
    "completeReferral": Action("Complete the referral", ("referralId", "expectedVersion"), "referral"),
    "cancelReferral": Action("Cancel the referral", ("referralId", "expectedVersion"), "referral"),
    "logSession": Action("Log a session", ("referralId",), "referral"),
    "setCareGoal": Action("Set a care goal", ("referralId",), "referral"),
    "updateGoalProgress": Action("Update a goal's progress", ("goalId", "expectedVersion", "referralId"), "referral"),
    "recordMilestone": Action("Record a milestone", ("referralId",), "referral"),
    "recordAssessment": Action("Record an assessment", ("referralId", "instrument"), "referral"),
    "setService": Action("Capacity of a service", ("organizationId", "service"), "services"),
    "registerStaffUser": Action("Register a staff member", (), "users"),
    "setStaffRoles": Action("Change roles", ("staffUserId", "expectedVersion"), "users"),
    "updateStaffUser": Action("Correct name or e-mail", ("staffUserId", "expectedVersion"), "users"),
    "deactivateStaffUser": Action("Deactivate", ("staffUserId", "expectedVersion"), "users"),
    "reactivateStaffUser": Action("Reactivate", ("staffUserId", "expectedVersion"), "users"),
    "issuePasswordReset": Action("Password link", ("staffUserId",), "users"),
    "updateOAuthClient": Action("Change a client", ("clientId", "expectedVersion"), "clients"),
    "correctSurvivorIdentity": Action("Correct identifying details", ("survivorId", "expectedVersion"), "survivor"),
    "placeLegalHold": Action("Place a legal hold", ("survivorId", "expectedVersion"), "survivor"),
    "liftLegalHold": Action("Lift the legal hold", ("survivorId", "expectedVersion"), "survivor"),
    "requestSurvivorErasure": Action("Erase this survivor's record", ("survivorId", "expectedVersion"), "survivor"),
    "resolveDuplicateReview": Action("Review a possible duplicate", ("reviewId", "expectedVersion", "resolution"),
                                     "duplicates"),
}
SHOWN_ONCE = {"link": "Hand this link to the person (never a password); it works once, until %(until)s.",
              "webhookSecret": "The webhook signing secret, shown only now: hand it to the partner."}
CONTEXT_ONLY = {"referralId", "survivorId"}  # carried to come back to the record, not part of every input


async def choices_for(request: Request, signed: SignedIn, mutation: str,
                      fixed: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """The ids a person picks by name: counselors with their caseload, a survivor's consents in force,
    a referral's goals."""
    if mutation == "assignCounselor":
        answer = await gql.run(request, signed.principal, "{ viewer { organization { counselors { id displayName "
                                                          "openCaseload } } } }")
        counselors = answer.data.get("viewer", {}).get("organization", {}).get("counselors") or []
        return {"counselorId": [(c["id"], f"{c['displayName']} ({c['openCaseload']})") for c in counselors]}
    if mutation == "createReferral":
        answer = await gql.run(request, signed.principal, SURVIVOR, {"id": fixed["survivorId"]})
        consents = (answer.data.get("node") or {}).get("consents") or []
        return {"consentId": [(c["id"], f"{c['recipient']['name']}, {i18n.day(c['validFrom'][:10], signed.language)}")
                              for c in consents if c["status"] == "ACTIVE"]}
    if mutation == "recordConsent" and "recipientId" in fixed:
        return {}
    if mutation == "requestSurvivorErasure":  # RETENTION_EXPIRED is the retention run's own
        return {"reason": [(r.value, i18n.humanize(r.value)) for r in ErasureReason
                           if r is not ErasureReason.RETENTION_EXPIRED]}
    if mutation in ("recordConsent", "registerStaffUser"):  # the partners consent names; any organization's staff
        answer = await gql.run(request, signed.principal, ORGANIZATIONS,
                               {"kind": "PARTNER" if mutation == "recordConsent" else None})
        named = [(o["id"], o["name"]) for o in _edges(answer.data.get("organizations"))]
        return {"recipientId" if mutation == "recordConsent" else "organizationId": named}
    if mutation == "recordMilestone" and "referralId" in fixed:
        answer = await gql.run(request, signed.principal, REFERRAL, {"id": fixed["referralId"]})
        goals = (answer.data.get("node") or {}).get("goals") or []
        return {"goalId": [("", "—"), *[(g["id"], g["description"][:60]) for g in goals]]}
    return {}


def _query_of(schema: Any, mutation: str) -> str:
    """The mutation with every record its payload returns (by id), its plain values (a password link, a
    webhook secret: shown once) and its userErrors."""
    mutation_type = schema.mutation_type
    payload = get_named_type(mutation_type.fields[mutation].type)
    picks = []
    for name, spec in payload.fields.items():
        kind = get_named_type(spec.type)
        if name == "userErrors":
            picks.append("userErrors { field code message }")
        elif isinstance(kind, GraphQLObjectType) and "id" in kind.fields:
            picks.append(f"{name} {{ id }}")
        elif isinstance(kind, GraphQLScalarType):
            picks.append(name)
    input_name = get_named_type(mutation_type.fields[mutation].args["input"].type).name
    return f"mutation($input: {input_name}!) {{ {mutation}(input: $input) {{ {' '.join(picks)} }} }}"


# ----------------------------------------------------------------------------- the router


def mount_console(app: FastAPI) -> None:
    router = APIRouter(prefix="/app", include_in_schema=False)
    app.mount("/app/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @router.get("/sign-in")
    async def sign_in_page(request: Request, notice: str = "") -> Response:
        try:
            await current(request)
            return RedirectResponse("/app", status_code=303)
        except SignInRequired:
            return render(request, "sign_in.html", signed=None, notice=NOTICES.get(notice, ""))

    @router.post("/sign-in")
    async def start_sign_in(request: Request) -> Response:
        language = i18n.chosen(request.cookies.get(LANGUAGE_COOKIE))
        started = await begin_sign_in(request, language)
        if started is None:
            return render(request, "sign_in.html", signed=None, status=503,
                          notice=NOTICES["no-organization"])
        return started

    @router.get("/callback")
    async def callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
        if error or not code:
            return to_sign_in("sign-in-failed")
        try:
            return await finish_sign_in(request, code=code, state=state)
        except SignInRequired as failed:
            return to_sign_in(failed.reason)

    @router.post("/language")
    async def language(request: Request) -> Response:
        form = await request.form()
        chosen = i18n.chosen(str(form.get("language", "")))
        signed = None
        try:
            signed = await current(request)
        except SignInRequired:
            pass
        if signed is not None and not csrf_ok(signed, form.get("csrf")):
            return RedirectResponse("/app", status_code=303)
        await set_language(request, signed, chosen)
        response = RedirectResponse(safe_next(form.get("next")), status_code=303)
        response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=365 * 24 * 3600, httponly=True, samesite="lax",
                            secure=request.app.state.pamoja.settings.public_url.startswith("https://"))
        return response

    async def home(request: Request, signed: SignedIn) -> Response:
        answer = await gql.run(request, signed.principal, VIEWER)
        viewer = answer.data.get("viewer") or {}
        counts: dict[str, int] = {}
        roles = set(viewer.get("roles") or [])
        wanted = {"caseload": {"assignedToMe": True, "status": OPEN_STATUSES}} if "COUNSELOR" in roles else {}
        if "PARTNER_COORDINATOR" in roles:
            wanted["intake"] = {"status": ["REQUESTED"]}
        for name, filters in wanted.items():  # the count alone: no rows fetched for a number
            counted = await gql.run(request, signed.principal, COUNT, {"f": filters})
            counts[name] = (counted.data.get("referrals") or {}).get("totalCount", 0)
        return render(request, "home.html", signed=signed, viewer=viewer, counts=counts)

    async def signed_out(request: Request, signed: SignedIn) -> Response:
        await sign_out(request, signed)
        response = to_sign_in("signed-out")
        clear_session_cookie(request, response)
        return response

    async def survivors(request: Request, signed: SignedIn) -> Response:
        """A search is posted, never put in the address: a pseudonym or a phone number would stay in the
        browser's history and in any proxy's log."""
        form = await request.form() if request.method == "POST" else FormData()
        search = str(form.get("q", "")).strip()
        after = str(form.get("after", "")) or request.query_params.get("after")
        answer = await gql.run(request, signed.principal, SURVIVORS, {"search": search or None, "after": after})
        found = answer.data.get("survivors") or {}
        return render(request, "survivors.html", signed=signed, search=search, survivors=_edges(found),
                      page=found.get("pageInfo") or {}, total=found.get("totalCount", 0), errors=answer.errors)

    async def survivor(request: Request, signed: SignedIn) -> Response:
        record_id = global_id(request.path_params["record_id"])
        answer = await gql.run(request, signed.principal, SURVIVOR, {"id": record_id}) if record_id else None
        record = (answer.data.get("node") if answer else None) or None
        if not record or "pseudonym" not in record:
            return not_found(request, signed)
        record["referral_list"] = _edges(record.get("referrals"))
        return render(request, "survivor.html", signed=signed, survivor=record, services=SERVICE_TYPES,
                      done=request.query_params.get("done"))

    async def partners(request: Request, signed: SignedIn) -> Response:
        record_id = global_id(request.path_params["record_id"])
        service = request.query_params.get("service", "PSYCHOSOCIAL_COUNSELING")
        if record_id is None or service not in SERVICE_TYPES:
            return not_found(request, signed)
        answer = await gql.run(request, signed.principal, MATCHES, {"id": record_id, "service": service})
        record = answer.data.get("node") if answer.data else None
        if not record:
            return not_found(request, signed)
        consented = {c["recipient"]["id"] for c in record.get("consents") or [] if c["status"] == "ACTIVE"}
        return render(request, "partners.html", signed=signed, survivor=record, service=service, consented=consented,
                      services=SERVICE_TYPES, matches=(answer.data.get("partnerMatches") or [])[:MATCHES_SHOWN],
                      errors=answer.errors)

    async def referrals(request: Request, signed: SignedIn) -> Response:
        view = request.query_params.get("view", "all")
        filters = {"intake": {"status": ["REQUESTED"]}, "caseload": {"assignedToMe": True, "status": OPEN_STATUSES},
                   "unassigned": {"needsAssignment": True}, "concerns": {}, "all": {}}.get(view, {})
        answer = await gql.run(request, signed.principal, REFERRALS,
                               {"f": filters, "after": request.query_params.get("after")})
        found = answer.data.get("referrals") or {}
        rows = _edges(found)
        if view == "intake":  # overdue first, then the least time left to respond
            rows.sort(key=lambda r: (not r["overdue"], r.get("respondBy") or ""))
        if view == "concerns":  # the safeguarding concerns that reached me, the latest first
            rows = sorted((r for r in rows if r["safeguardingConcerns"]),
                          key=lambda r: max(c["raisedAt"] for c in r["safeguardingConcerns"]), reverse=True)
        return render(request, "referrals.html", signed=signed, view=view, referrals=rows,
                      page=found.get("pageInfo") or {}, total=found.get("totalCount", 0), errors=answer.errors)

    async def referral(request: Request, signed: SignedIn) -> Response:
        record_id = global_id(request.path_params["record_id"])
        answer = await gql.run(request, signed.principal, REFERRAL, {"id": record_id}) if record_id else None
        record = (answer.data.get("node") if answer else None) or None
        if not record or "status" not in record:
            return not_found(request, signed)
        instruments = await gql.run(request, signed.principal, INSTRUMENTS)
        viewer = (answer.data.get("viewer") if answer else None) or {}
        return render(request, "referral.html", signed=signed, referral=record, viewer=viewer,
                      sessions=_edges(record.get("sessions")), actions=referral_actions(record, signed, viewer),
                      instruments=instruments.data.get("assessmentInstruments") or [],
                      done=request.query_params.get("done"))

    async def act(request: Request, signed: SignedIn) -> Response:
        mutation = request.path_params["mutation"]
        action = ACTIONS.get(mutation)
        if action is None:
            return not_found(request, signed)
        source = request.query_params if request.method == "GET" else await request.form()
        fixed = {k: str(source[k]) for k in action.fixed if source.get(k)}
        if any(k.endswith("Id") and global_id(v) is None for k, v in fixed.items()):
            return not_found(request, signed)
        schema = request.app.state.graphql_schema._schema
        extra: dict[str, Any] = {}
        if mutation == "recordAssessment":
            extra = await assessment_form(request, signed, fixed)
            if extra.get("instrument") is None:
                return not_found(request, signed)
        accepted = forms.input_type(schema, mutation).fields
        asked = {k: v for k, v in fixed.items() if k not in CONTEXT_ONLY or k in accepted}
        fields = forms.controls(schema, mutation, fixed=asked,
                                choices=await choices_for(request, signed, mutation, fixed))
        if mutation == "recordAssessment":
            fields = [f for f in fields if f.name != "scores"]
        values = {"title": action.title, "mutation": mutation, "fields": fields, "context": fixed,
                  "general_errors": [], "duplicates": [], **extra}
        if request.method == "GET":
            for control in fields:  # a session is logged in under a minute: the usual answers are given
                control.value = control.value if control.value is not None else usual(mutation, control.name)
            return render(request, "form.html", signed=signed, **values)
        form = source if isinstance(source, FormData) else await request.form()
        data, problems = forms.parse(form, form.getlist, fields)
        if mutation == "recordAssessment":
            data["scores"], more = assessment_scores(form, extra["instrument"])
            problems += more
        if problems:
            return render(request, "form.html", signed=signed, status=422, **values)
        if mutation == "registerSurvivor" and "confirmNew" not in form:
            duplicates = await possible_duplicates(request, signed, data)
            if duplicates:
                return render(request, "form.html", signed=signed, status=409,
                              **{**values, "duplicates": duplicates})
        answer = await gql.run(request, signed.principal, _query_of(schema, mutation), {"input": data})
        payload = answer.data.get(mutation) if answer.data else None
        if answer.errors or payload is None:
            messages = [e.get("message", "") for e in answer.errors] or ["The change could not be made."]
            return render(request, "form.html", signed=signed, status=403 if answer.forbidden else 422,
                          **{**values, "general_errors": messages})
        if payload["userErrors"]:
            values["general_errors"] = forms.place_errors(fields, payload["userErrors"])
            return render(request, "form.html", signed=signed, status=422, **values)
        once = {name: payload[name] for name in SHOWN_ONCE if payload.get(name)}
        if once:  # a credential: shown on this page, never put in a URL or kept
            return render(request, "shown_once.html", signed=signed, title=action.title, once=once,
                          messages=SHOWN_ONCE, expires=payload.get("expiresAt"),
                          back=after(action, mutation, payload, fixed))
        return RedirectResponse(after(action, mutation, payload, fixed), status_code=303)

    async def audit(request: Request, signed: SignedIn) -> Response:
        record = global_id(request.query_params.get("record"))
        answer = await gql.run(request, signed.principal, AUDIT,
                               {"record": record, "after": request.query_params.get("after")})
        found = answer.data.get("auditEvents") if answer.data else None
        return render(request, "audit.html", signed=signed, record=record, events=_edges(found),
                      page=(found or {}).get("pageInfo") or {}, forbidden=answer.forbidden,
                      status=403 if answer.forbidden else 200)

    async def users(request: Request, signed: SignedIn) -> Response:
        form = await request.form() if request.method == "POST" else FormData()
        search = str(form.get("q", "")).strip()
        answer = await gql.run(request, signed.principal, USERS,
                               {"search": search or None, "after": str(form.get("after", "")) or None})
        found = answer.data.get("staffUsers") if answer.data else None
        return render(request, "users.html", signed=signed, search=search, users=_edges(found),
                      done=request.query_params.get("done"),
                      page=(found or {}).get("pageInfo") or {},
                      forbidden=answer.forbidden, status=403 if answer.forbidden else 200)

    async def clients(request: Request, signed: SignedIn) -> Response:
        answer = await gql.run(request, signed.principal, CLIENTS)
        return render(request, "clients.html", signed=signed, done=request.query_params.get("done"),
                      clients=_edges(answer.data.get("oauthClients") if answer.data else None),
                      forbidden=answer.forbidden, status=403 if answer.forbidden else 200)

    async def export(request: Request, signed: SignedIn) -> Response:
        """The subject access export as a file download (a POST: it writes an audit row); never kept."""
        record_id = global_id(request.path_params["record_id"])
        answer = await gql.run(request, signed.principal, EXPORT, {"id": record_id}) if record_id else None
        payload = (answer.data.get("exportSurvivorRecord") if answer and answer.data else None) or {}
        if not payload.get("document"):
            if answer is not None and answer.forbidden:
                return render(request, "message.html", signed=signed, status=403, title="Not allowed",
                              message="Only a supervisor of her organization may export her record.")
            return not_found(request, signed)
        return Response(payload["document"], media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="subject-export-{record_id}.json"',
            "Cache-Control": "no-store"})

    async def duplicates(request: Request, signed: SignedIn) -> Response:
        answer = await gql.run(request, signed.principal, DUPLICATES, {"after": request.query_params.get("after")})
        found = answer.data.get("duplicateReviews") if answer.data else None
        return render(request, "duplicates.html", signed=signed, reviews=_edges(found),
                      total=(found or {}).get("totalCount", 0), page=(found or {}).get("pageInfo") or {},
                      done=request.query_params.get("done"), forbidden=answer.forbidden,
                      status=403 if answer.forbidden else 200)

    async def services(request: Request, signed: SignedIn) -> Response:
        answer = await gql.run(request, signed.principal, SERVICES)
        organization = ((answer.data or {}).get("viewer") or {}).get("organization") or {}
        return render(request, "services.html", signed=signed, organization=organization, services=SERVICE_TYPES)

    for path, handler, methods in (
        ("", home, ["GET"]), ("/sign-out", signed_out, ["POST"]), ("/survivors", survivors, ["GET", "POST"]),
        ("/survivors/{record_id}", survivor, ["GET"]), ("/survivors/{record_id}/partners", partners, ["GET"]),
        ("/referrals", referrals, ["GET"]), ("/referrals/{record_id}", referral, ["GET"]),
        ("/act/{mutation}", act, ["GET", "POST"]), ("/audit", audit, ["GET"]), ("/users", users, ["GET", "POST"]),
        ("/clients", clients, ["GET"]), ("/services", services, ["GET"]),
        ("/survivors/{record_id}/export", export, ["POST"]), ("/duplicates", duplicates, ["GET"]),
    ):
        router.add_api_route(path, page(handler), methods=methods)
    app.include_router(router)


OPEN_STATUSES = ["ACCEPTED", "IN_PROGRESS", "ON_HOLD"]
MATCHES_SHOWN = 10  # the best ten partners: enough to choose from, small enough for a slow connection
SERVICE_TYPES = [service.value for service in ServiceType]


def referral_actions(referral: dict[str, Any], signed: SignedIn, viewer: dict[str, Any]) -> list[tuple[str, str]]:
    """The forms this person may open on this referral, by its status and their roles: the API decides
    in the end; these only keep buttons that would be refused off the page."""
    roles = set(signed.principal.roles)
    status = referral["status"]
    ours = (viewer.get("organization") or {}).get("id") == referral["receivingOrganization"]["id"]
    referring = (viewer.get("organization") or {}).get("id") == referral["referringOrganization"]["id"]
    base = {"referralId": referral["id"], "expectedVersion": str(referral["version"])}
    options: list[tuple[str, dict[str, str]]] = []
    if referring and roles & {"CASE_MANAGER", "SUPERVISOR"}:
        if status == "DRAFT":
            options.append(("sendReferral", base))
        if status in {"DRAFT", "REQUESTED", "ACCEPTED", "IN_PROGRESS", "ON_HOLD"}:
            options.append(("cancelReferral", base))
    if ours and "PARTNER_COORDINATOR" in roles:
        if status == "REQUESTED":
            options += [("acceptReferral", base), ("rejectReferral", base)]
        if status in {"ACCEPTED", "IN_PROGRESS", "ON_HOLD"}:
            options.append(("assignCounselor", base))
    if ours and roles & {"COUNSELOR", "PARTNER_COORDINATOR"}:
        if status == "ACCEPTED":
            options.append(("startReferral", base))
        if status == "IN_PROGRESS":
            options += [("holdReferral", base), ("completeReferral", base)]
        if status == "ON_HOLD":
            options.append(("resumeReferral", base))
    if ours and "COUNSELOR" in roles and status in {"ACCEPTED", "IN_PROGRESS"}:
        only = {"referralId": referral["id"]}
        options += [("logSession", only), ("setCareGoal", only), ("recordMilestone", only)]
    return [(ACTIONS[name].title, "/app/act/" + name + "?" + urlencode(params)) for name, params in options]


def usual(mutation: str, name: str) -> Any:
    """The answer most forms of this kind get, filled in for the person to change if need be."""
    if mutation == "logSession":
        if name == "startedAt":
            return datetime.now(i18n.NAIROBI).strftime("%Y-%m-%dT%H:%M")
        return {"durationMinutes": "50", "modality": "INDIVIDUAL", "sessionType": "FOLLOW_UP",
                "attendance": "ATTENDED"}.get(name)
    if name in {"achievedOn", "administeredOn"}:
        return datetime.now(i18n.NAIROBI).date().isoformat()
    return None


def after(action: Action, mutation: str, payload: dict[str, Any], fixed: dict[str, str]) -> str:
    done = f"done={mutation}"
    if action.back in {"services", "users", "clients", "duplicates"}:
        return f"/app/{action.back}?{done}"
    if action.back == "survivor":
        survivor_id = (payload.get("survivor") or {}).get("id") or fixed.get("survivorId")
        return f"/app/survivors/{survivor_id}?{done}" if survivor_id else f"/app?{done}"
    referral_id = fixed.get("referralId") or (payload.get("referral") or {}).get("id")
    return f"/app/referrals/{referral_id}?{done}" if referral_id else f"/app?{done}"


async def assessment_form(request: Request, signed: SignedIn, fixed: dict[str, str]) -> dict[str, Any]:
    answer = await gql.run(request, signed.principal, INSTRUMENTS)
    found = [i for i in answer.data.get("assessmentInstruments") or [] if i["key"] == fixed.get("instrument")]
    return {"instrument": found[0] if found else None}


def assessment_scores(form: FormData, instrument: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    scores: list[dict[str, Any]] = []
    problems: list[Any] = []
    for sub in instrument["subdomains"]:
        raw = str(form.get("score." + sub["key"], "")).strip()
        if not raw:
            continue
        try:
            scores.append({"subdomain": sub["key"], "score": int(raw)})
        except ValueError:
            problems.append(forms.Unparsable("score." + sub["key"], "Enter a whole number."))
    return scores, problems


async def possible_duplicates(request: Request, signed: SignedIn, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Survivors already registered under the same pseudonym's start or the same phone: shown before
    registering someone twice."""
    found: dict[str, dict[str, Any]] = {}
    for search in (str(data.get("pseudonym", ""))[:6], data.get("phone"), data.get("guardianPhone")):
        if search and len(str(search).strip()) >= 2:
            answer = await gql.run(request, signed.principal, SURVIVORS, {"search": str(search).strip()})
            for node in _edges(answer.data.get("survivors") if answer.data else None):
                found[node["id"]] = node
    return list(found.values())
