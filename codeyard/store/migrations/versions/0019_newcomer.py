"""The team around tickets (issue 19): email addresses and one-time sign-in codes, profiles
with pictures, and an SSH key per user.

``users`` gain ``email`` (unique; where sign-in codes and invitations go), ``display_name``,
``time_zone`` and ``avatar_at`` (when the picture in ``avatars`` was set), and an ed25519 key
pair for pushing: the public key in OpenSSH form, its ``SHA256:`` fingerprint, and the private
key sealed with the data dir's key (AES-GCM, bound to the user's id). ``avatars`` hold the
pictures apart from ``users``, whose row every authenticated request reads. ``email_codes``
hold one-time sign-in codes as digests, with their expiry and the wrong guesses made against
them.

(The slot was first reserved for the first-hour and crash-proof leftovers, which did not need it.)

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email", sa.String(320), nullable=True))
        batch.add_column(sa.Column("display_name", sa.String(200), nullable=True))
        batch.add_column(sa.Column("time_zone", sa.String(64), nullable=True))
        batch.add_column(sa.Column("ssh_public_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("ssh_private_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("ssh_fingerprint", sa.String(100), nullable=True))
        batch.add_column(sa.Column("ssh_key_created_at", sa.String(32), nullable=True))
        batch.add_column(sa.Column("avatar_at", sa.String(32), nullable=True))
        batch.create_index("ux_users_email", ["email"], unique=True)
    # Pictures in their own table: every authenticated request reads its user's row.
    op.create_table(
        "avatars",
        sa.Column("user_id", sa.String(40), primary_key=True),
        sa.Column("media_type", sa.String(40), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "email_codes",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(40), nullable=False, index=True),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("email_codes")
    op.drop_table("avatars")
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ux_users_email")
        for column in (
            "avatar_at",
            "ssh_key_created_at",
            "ssh_fingerprint",
            "ssh_private_key",
            "ssh_public_key",
            "time_zone",
            "display_name",
            "email",
        ):
            batch.drop_column(column)
