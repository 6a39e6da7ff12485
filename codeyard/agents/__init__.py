"""Agent adapters: each provider starts its agent and yields normalized events (never persists)."""
