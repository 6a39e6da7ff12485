"""Files attached to operator messages (images, for agents that read them)."""
