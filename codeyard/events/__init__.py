"""Live fan-out of committed events, and the SSE/WebSocket encoders that replay then follow."""
