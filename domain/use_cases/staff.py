"""Staff users as other records reference them (a referral's counselor, the viewer)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Protocol

from domain import policy
from domain.principal import Principal
from domain.scopes import Action
from domain.views import StaffUserView


class StaffStore(Protocol):
    async def staff_by_id(self, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, StaffUserView]: ...


async def staff_by_id(*, store: StaffStore, principal: Principal, ids: Sequence[uuid.UUID],
                      direct: bool) -> Mapping[uuid.UUID, StaffUserView]:
    """Looked up by id (`node`), only colleagues of the caller's own organization are visible;
    as a reference from a record the caller already sees (an assigned counselor), the person is.
    An administrator sees every account, with its e-mail; for anyone else the e-mail and the
    deactivation reason are withheld."""
    found = await store.staff_by_id(ids)
    if policy.may_administer_staff(principal, Action.READ):
        return found
    shown = {k: dataclasses.replace(v, email=None, deactivation_reason=None) for k, v in found.items()}
    if not direct:
        return shown
    return {k: v for k, v in shown.items()
            if policy.may_look_up_colleague(principal, staff_organization_id=v.organization_id)}
