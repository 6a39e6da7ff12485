"""Tickets, reviews and work queues (issue 19): the work before and after a run.

``domain`` is pure (statuses, transitions, prompts, the queue's scheduling rule, the search
query); ``store`` reads and writes the rows; ``service``, ``agent``, ``reviews`` and ``queues``
are the use cases the routers in ``codeyard/api/tickets*.py`` call. A ticket's agent work is an
ordinary run linked to the ticket, so landing, diffs and budgets are the run services' own.
"""
