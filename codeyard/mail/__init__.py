"""Outgoing email (issue 19): one-time sign-in codes and invitations, over the configured SMTP
server. One seam, ``send``; nothing here knows about users or codes."""

from codeyard.mail.smtp import MailNotConfigured, send

__all__ = ["MailNotConfigured", "send"]
