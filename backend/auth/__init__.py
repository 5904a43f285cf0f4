"""Authentication: JWTs, API tokens, passwords, and the per-route access policy."""
