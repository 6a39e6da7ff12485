"""GitHub beyond opening a pull request (issue 21): webhooks, their sweeper, and the API calls
they need.

``signature`` verifies deliveries; ``client`` wraps :mod:`githubkit` (typed, async) for the
calls Codeyard makes — listing a hook's deliveries and asking for redelivery — configured from
the same :class:`~codeyard.prs.base.PrConfig` as pull requests (token, Enterprise API URL).
What a delivery means for a run is decided in ``codeyard.services.github``.
"""
