"""The worker connects as the runtime role, inside a `worker` context, instead of as the owner.

The owner can alter and drop tables and (as the superuser compose used) bypasses row-level security,
including on survivor identities: far more than a process that relays webhooks needs. The worker now
uses the runtime role and marks each of its transactions with `set_config('app.system', 'worker',
true)`; these policies give that context exactly the rows its steps touch, across organizations:

- referral: read and mark overdue (flag_overdue);
- outbox_event: read and mark dispatched (fan_out); inserting was already open to the runtime role;
- webhook_delivery and its attempts: fan out, claim, record;
- expired rows only, for housekeeping: idempotency records, revoked access tokens, authorization codes.
  A revoked token or a code is deleted only once it could no longer be accepted anyway, so even a
  caller who sets the context cannot un-revoke a live token.

Survivors, identities, keys, consents and care records get no worker policy: the context reads none of
them. The context is a setting any runtime-role connection could make, like `app.organization_id`:
row-level security is the backstop for a query that forgets its filter, not for SQL injection.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORKER = "current_setting('app.system', true) = 'worker'"
EVERY_ROW = "true"

# (table, policy name, command, USING, WITH CHECK)
POLICIES: tuple[tuple[str, str, str, str | None, str | None], ...] = (
    ("referral", "worker_read", "SELECT", WORKER, None),
    ("referral", "worker_mark_overdue", "UPDATE", WORKER, WORKER),
    ("outbox_event", "worker_read", "SELECT", WORKER, None),
    ("outbox_event", "worker_dispatch", "UPDATE", WORKER, WORKER),
    ("webhook_delivery", "worker_deliver", "ALL", WORKER, WORKER),
    ("webhook_delivery_attempt", "worker_record", "ALL", WORKER, WORKER),
    # A DELETE's WHERE reads the rows, so the context also sees them, but only once they have expired.
    ("idempotency_record", "worker_read_expired", "SELECT", f"{WORKER} AND expires_at <= now()", None),
    ("idempotency_record", "worker_sweep", "DELETE", f"{WORKER} AND expires_at <= now()", None),
    # Row security is new on these two: what the runtime role did before stays open to it.
    ("revoked_token", "runtime_read", "SELECT", EVERY_ROW, None),
    ("revoked_token", "runtime_revoke", "INSERT", None, EVERY_ROW),
    ("revoked_token", "runtime_update", "UPDATE", EVERY_ROW, EVERY_ROW),
    ("revoked_token", "worker_sweep", "DELETE", f"{WORKER} AND expires_at < now()", None),
    ("oauth_authorization_code", "runtime_read", "SELECT", EVERY_ROW, None),
    ("oauth_authorization_code", "runtime_issue", "INSERT", None, EVERY_ROW),
    ("oauth_authorization_code", "runtime_redeem", "UPDATE", EVERY_ROW, EVERY_ROW),
    ("oauth_authorization_code", "worker_sweep", "DELETE", f"{WORKER} AND expires_at < now()", None),
)
NEWLY_SECURED = ("revoked_token", "oauth_authorization_code")


def app_role() -> str:
    config = op.get_context().config
    role = config.get_main_option("app_role") if config is not None else None
    return role or "pamoja_app"


def upgrade() -> None:
    role = app_role()
    for table in NEWLY_SECURED:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"GRANT DELETE ON revoked_token, oauth_authorization_code TO {role}")
    for table, name, command, using, check in POLICIES:
        clauses = (f" USING ({using})" if using else "") + (f" WITH CHECK ({check})" if check else "")
        op.execute(f"CREATE POLICY {name} ON {table} FOR {command} TO {role}{clauses}")


def downgrade() -> None:
    role = app_role()
    for table, name, *_ in POLICIES:
        op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
    op.execute(f"REVOKE DELETE ON revoked_token, oauth_authorization_code FROM {role}")
    for table in NEWLY_SECURED:
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
