"""Discovery conversations (issue 19): a read-only agent run over a project's code whose only
way to change anything is to propose actions (create a ticket, start a run) that a person
accepts or rejects with one call.

``domain`` is pure (the actions' shape, reading them out of the agent's answer); ``store``
reads and writes conversation rows; ``service`` holds the use cases behind
``codeyard/api/discovery.py``. The agent's run is an ordinary run in ``plan`` permission mode
(``safe_mode``: file edits denied, commands asked), so streaming, approvals and budgets are the
run's own.
"""
