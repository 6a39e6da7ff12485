"""Helpers shared by tests: real server processes, SSE clients."""
