"""Seed the NGO's six-domain survivor-outcome assessment as data in assessment_instrument.

Instruments are data, not code (domain.md): `recordAssessment` loads the latest active version of
an instrument by key from this table and scores with it. A later version of the instrument comes
in its own migration with a new `version`, so assessments already recorded keep pointing at the
definition they were scored with.

Downgrade deletes the seeded row; it fails (foreign key) once assessments were recorded with it,
which is right: those scores would lose their meaning.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from domain.assessments import SURVIVOR_OUTCOME_ASSESSMENT, Instrument

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

instrument_table = sa.table(
    "assessment_instrument",
    sa.column("key", sa.Text()),
    sa.column("version", sa.Text()),
    sa.column("name", sa.Text()),
    sa.column("definition", JSONB()),
    sa.column("active", sa.Boolean()),
)


def upgrade() -> None:
    # Round-trip through Instrument so a malformed definition fails here, not at the first assessment.
    definition = Instrument.from_dict(SURVIVOR_OUTCOME_ASSESSMENT).to_dict()
    op.bulk_insert(instrument_table, [{
        "key": definition["key"], "version": definition["version"], "name": definition["name"],
        "definition": definition, "active": True,
    }])


def downgrade() -> None:
    op.execute(instrument_table.delete().where(
        instrument_table.c.key == SURVIVOR_OUTCOME_ASSESSMENT["key"],
        instrument_table.c.version == SURVIVOR_OUTCOME_ASSESSMENT["version"],
    ))
