"""Run supervision: the queue, concurrency slots, turns, and recovery after a restart."""
