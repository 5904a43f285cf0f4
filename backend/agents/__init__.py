"""Agents: users' own machines, attached over one outgoing WebSocket each."""
