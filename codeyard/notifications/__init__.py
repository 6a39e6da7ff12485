"""Notifications: derived from the event log into a durable outbox, delivered by channels.

``messages`` (pure) says what an event means to a person; ``derive`` is the log consumer that
writes one outbox row per event x target x user; ``worker`` delivers them with retries;
``channels`` is the registry every sink (web push, webhooks, Slack, Discord, native devices)
registers with; ``tokens`` signs the single-use links that answer an approval from a phone.
"""
