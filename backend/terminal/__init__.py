"""Interactive shells over WebSocket: in sandboxes (Docker exec with a TTY) and on agents."""
