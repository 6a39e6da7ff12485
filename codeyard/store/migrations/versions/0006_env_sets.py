"""Env sets: named groups of environment variables for agent processes, encrypted at rest.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "env_sets",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        # AES-GCM ciphertext of the JSON object of variables (nonce + ciphertext, base64).
        sa.Column("ciphertext", sa.Text(), nullable=False),
        # Variable names only, so lists can show them without decrypting.
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("env_sets")
