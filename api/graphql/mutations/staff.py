"""Staff accounts, for the NGO's administrators: register, change roles, deactivate, reactivate, and
issue a one-time link to set a password. Every change is audited (domain/use_cases/staff_admin.py)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import strawberry

from api.graphql.context import Context
from api.graphql.errors import UserError
from api.graphql.mutations.base import decode_id, run_mutation
from api.graphql.types.staff import StaffUser
from auth.password_reset import link_url
from db.staff import SqlStaff
from db.staff_admin import Audit, SqlStaffAccounts
from domain import enums
from domain.use_cases import staff as staff_cases
from domain.use_cases import staff_admin
from domain.use_cases.staff_admin import AUDIT_PURPOSE, NewStaffUser, PasswordLink

ROLES_HELP = ("REFERRING_NGO staff: CASE_MANAGER, SUPERVISOR, ANALYST, ADMIN; PARTNER staff: PARTNER_COORDINATOR, "
              "COUNSELOR.")


def staff_audit(context: Context) -> Audit:
    """Changes to staff accounts are audited as the calling administrator."""
    async def audit(action: str, record_id: str) -> None:
        await context.unit.audit(action=action, record_type="StaffUser", record_id=record_id, outcome="allowed",
                                 purpose=AUDIT_PURPOSE)

    return audit


def _store(context: Context) -> SqlStaffAccounts:
    return SqlStaffAccounts(context.db, audit=staff_audit(context))


async def load_staff_user(context: Context, staff_user_id: uuid.UUID) -> StaffUser | None:
    found = await staff_cases.staff_by_id(store=SqlStaff(context.db), principal=context.principal,
                                          ids=[staff_user_id], direct=True)
    return StaffUser.from_view(found[staff_user_id]) if staff_user_id in found else None


@strawberry.input(description="Register a person. They get no password here: send them the link from "
                              "issuePasswordReset (or register the same e-mail at the NGO's identity provider).")
class RegisterStaffUserInput:
    idempotency_key: str | None = None
    organization_id: strawberry.ID
    email: str = strawberry.field(description="The sign-in e-mail, e.g. amina@ijm.example; unique.")
    display_name: str
    roles: list[enums.Role] = strawberry.field(description="At least one. " + ROLES_HELP)


@strawberry.input(description="Replace a person's roles. A role taken away stops working on their next request.")
class SetStaffRolesInput:
    idempotency_key: str | None = None
    staff_user_id: strawberry.ID
    roles: list[enums.Role] = strawberry.field(description="The complete new set, at least one. " + ROLES_HELP)
    expected_version: int | None = None


@strawberry.input(description="Correct a person's display name or sign-in e-mail; a field left out stays as it is.")
class UpdateStaffUserInput:
    idempotency_key: str | None = None
    staff_user_id: strawberry.ID = strawberry.field(description="The StaffUser id (staffUsers lists them).")
    display_name: str | None = strawberry.field(default=None, description="The name colleagues see, at most 200 "
                                                                          "characters.")
    email: str | None = strawberry.field(default=None, description="The address the person signs in with, e.g. "
                                                                   "amina@ijm.example; no other account may hold it.")
    expected_version: int | None = None


@strawberry.input
class DeactivateStaffUserInput:
    idempotency_key: str | None = None
    staff_user_id: strawberry.ID
    reason: str | None = strawberry.field(default=None, description="Why, for other administrators "
                                                                    "(at most 500 characters).")
    expected_version: int | None = None


@strawberry.input
class ReactivateStaffUserInput:
    idempotency_key: str | None = None
    staff_user_id: strawberry.ID
    expected_version: int | None = None


@strawberry.input(description="No idempotencyKey: the link is a credential and is never kept, not even to answer "
                              "a retry. Sending this again issues a new link, and the earlier one stops working.")
class IssuePasswordResetInput:
    staff_user_id: strawberry.ID


@strawberry.type
class StaffUserPayload:
    staff_user: StaffUser | None
    user_errors: list[UserError]


@strawberry.type
class DeactivateStaffUserPayload:
    staff_user: StaffUser | None
    open_referral_count: int | None = strawberry.field(
        description="Open referrals (accepted, in progress, on hold) from your organization still assigned to "
                    "this person. Their partner's coordinator finds them under "
                    "referrals(filter: {needsAssignment: true}) and reassigns them with assignCounselor.")
    user_errors: list[UserError]


@strawberry.type
class PasswordResetPayload:
    staff_user: StaffUser | None
    link: str | None = strawberry.field(description="Hand this to the person (never a password): it opens a page "
                                                    "where they set their password, once, before expiresAt.")
    expires_at: datetime | None
    user_errors: list[UserError]


@strawberry.type
class StaffMutations:
    @strawberry.mutation(description="Register a staff user at the NGO or a partner (administrators).")
    async def register_staff_user(self, info: strawberry.Info, input: RegisterStaffUserInput) -> StaffUserPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await staff_admin.register_staff(
                store=_store(context), principal=context.principal,
                new=NewStaffUser(organization_id=decode_id(input.organization_id, "Organization"), email=input.email,
                                 display_name=input.display_name, roles=tuple(input.roles)))

        user, errors = await run_mutation(info, operation="registerStaffUser", record_type="StaffUser", input=input,
                                          execute=execute, load=load_staff_user)
        return StaffUserPayload(staff_user=user, user_errors=errors)

    @strawberry.mutation(description="Replace a staff user's roles (administrators). Roles must fit the "
                                     "organization: " + ROLES_HELP)
    async def set_staff_roles(self, info: strawberry.Info, input: SetStaffRolesInput) -> StaffUserPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await staff_admin.set_roles(store=_store(context), principal=context.principal,
                                               staff_user_id=decode_id(input.staff_user_id, "StaffUser"),
                                               roles=tuple(input.roles), expected_version=input.expected_version)

        user, errors = await run_mutation(info, operation="setStaffRoles", record_type="StaffUser", input=input,
                                          execute=execute, load=load_staff_user)
        return StaffUserPayload(staff_user=user, user_errors=errors)

    @strawberry.mutation(description="Correct a staff user's display name or sign-in e-mail (administrators).")
    async def update_staff_user(self, info: strawberry.Info, input: UpdateStaffUserInput) -> StaffUserPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await staff_admin.update_details(store=_store(context), principal=context.principal,
                                                    staff_user_id=decode_id(input.staff_user_id, "StaffUser"),
                                                    display_name=input.display_name, email=input.email,
                                                    expected_version=input.expected_version)

        user, errors = await run_mutation(info, operation="updateStaffUser", record_type="StaffUser", input=input,
                                          execute=execute, load=load_staff_user)
        return StaffUserPayload(staff_user=user, user_errors=errors)

    @strawberry.mutation(description="Deactivate a staff user (administrators): sign-in, refresh and every live "
                                     "access token are refused from now on, and unused password links end. "
                                     "Their open referrals stay assigned until the partner's coordinator "
                                     "reassigns them; see openReferralCount.")
    async def deactivate_staff_user(self, info: strawberry.Info,
                                    input: DeactivateStaffUserInput) -> DeactivateStaffUserPayload:
        async def execute(context: Context) -> uuid.UUID:
            done = await staff_admin.deactivate(store=_store(context), principal=context.principal,
                                                staff_user_id=decode_id(input.staff_user_id, "StaffUser"),
                                                reason=input.reason, expected_version=input.expected_version)
            return done.staff_user_id

        user, errors = await run_mutation(info, operation="deactivateStaffUser", record_type="StaffUser",
                                          input=input, execute=execute, load=load_staff_user)
        count = None
        staff_user_id = decode_id(user.id, "StaffUser") if user is not None else None
        if staff_user_id is not None:
            context: Context = info.context
            count = await staff_admin.open_referral_count(store=_store(context), principal=context.principal,
                                                          staff_user_id=staff_user_id)
        return DeactivateStaffUserPayload(staff_user=user, open_referral_count=count, user_errors=errors)

    @strawberry.mutation(description="Let a deactivated staff user sign in again (administrators).")
    async def reactivate_staff_user(self, info: strawberry.Info, input: ReactivateStaffUserInput) -> StaffUserPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await staff_admin.reactivate(store=_store(context), principal=context.principal,
                                                staff_user_id=decode_id(input.staff_user_id, "StaffUser"),
                                                expected_version=input.expected_version)

        user, errors = await run_mutation(info, operation="reactivateStaffUser", record_type="StaffUser",
                                          input=input, execute=execute, load=load_staff_user)
        return StaffUserPayload(staff_user=user, user_errors=errors)

    @strawberry.mutation(description="A one-time link for a staff user to set their password (administrators). "
                                     "Earlier links stop working; using it ends the person's other sign-ins.")
    async def issue_password_reset(self, info: strawberry.Info, input: IssuePasswordResetInput) -> PasswordResetPayload:
        issued: list[PasswordLink] = []

        async def execute(context: Context) -> uuid.UUID:
            settings = context.state.settings
            issued.append(await staff_admin.issue_password_link(
                store=_store(context), principal=context.principal,
                staff_user_id=decode_id(input.staff_user_id, "StaffUser"), now=context.unit.now(),
                lifetime=timedelta(seconds=settings.password_link_ttl_seconds)))
            return issued[-1].staff_user_id

        user, errors = await run_mutation(info, operation="issuePasswordReset", record_type="StaffUser",
                                          input=input, execute=execute, load=load_staff_user)
        if user is None or not issued:
            return PasswordResetPayload(staff_user=user, link=None, expires_at=None, user_errors=errors)
        public_url = info.context.state.settings.public_url
        return PasswordResetPayload(staff_user=user, link=link_url(public_url, issued[-1].token),
                                    expires_at=issued[-1].expires_at, user_errors=errors)
