"""The workers registry (issue 16): hosts that execute runs say what they can serve.

Each executor process registers one worker row (host, installed agent CLIs and their versions,
slots, repositories it has on disk) and refreshes its heartbeat on a timer of its own, so a
heartbeat never waits behind git or disk work. ``GET /api/workers`` lists them; a worker whose
heartbeat is older than ``STALE_AFTER`` seconds is shown unhealthy.
"""
