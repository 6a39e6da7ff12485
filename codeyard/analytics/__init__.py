"""Analytics: hourly rollups derived from the event log, and the queries that read them.

``fold`` turns events into additive increments (pure), ``rollup`` is the log consumer that
writes them; ``queries`` answers the ``/api/analytics/*`` routes from the rollups and
``run_queries`` from the runs themselves, both filtered by ``filters``.
"""
