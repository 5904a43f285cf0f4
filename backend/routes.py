"""Every route of the backend, in one table. The OpenAPI document is checked against it."""

from __future__ import annotations

from aiohttp import web

from backend.handlers import (
    agents,
    auth,
    containers,
    engines,
    events,
    files,
    logs,
    meta,
    stats,
    terminal,
    volumes,
)

ROUTES: list[web.RouteDef] = [
    web.get("/health", meta.health),
    web.get("/api/openapi.json", meta.openapi),
    web.post("/api/auth/guest", auth.guest_login),
    web.post("/api/auth/login", auth.login),
    web.post("/api/auth/logout", auth.logout),
    web.get("/api/me", auth.me),
    web.post("/api/tokens", auth.create_token),
    web.get("/api/tokens", auth.list_tokens),
    web.delete("/api/tokens/{token_id}", auth.revoke_token),
    web.get("/api/images", meta.list_images),
    web.get("/api/roles", meta.list_roles),
    web.get("/api/containers", containers.list_containers),
    web.post("/api/containers", containers.create_container),
    # Before /api/containers/{id}, which would otherwise take "events" or "stats" for an ID.
    web.get("/api/containers/events", events.container_events),
    web.get("/api/containers/stats", stats.stats_stream),
    web.get("/api/containers/{id}", containers.get_container),
    web.get("/api/containers/{id}/stats", stats.container_stats),
    web.get("/api/containers/{id}/logs", logs.container_logs),
    web.post("/api/containers/{id}/start", containers.start_container),
    web.post("/api/containers/{id}/stop", containers.stop_container),
    web.delete("/api/containers/{id}", containers.delete_container),
    web.patch("/api/containers/{id}/settings", containers.update_settings),
    web.post("/api/containers/{id}/role/reinstall", containers.reinstall_role),
    web.get("/api/containers/{id}/files/list", files.list_files),
    web.get("/api/containers/{id}/files", files.download_file),
    web.post("/api/containers/{id}/files", files.upload_file),
    web.delete("/api/containers/{id}/files", files.delete_file),
    web.post("/api/containers/{id}/files/mkdir", files.make_directory),
    web.get("/api/volumes", volumes.list_volumes),
    web.delete("/api/volumes/{name}", volumes.delete_volume),
    web.get("/api/engines", engines.list_engines),
    web.post("/api/engines/{name}/drain", engines.drain_engine),
    web.post("/api/engines/{name}/undrain", engines.undrain_engine),
    web.get("/ws/terminal/{id}", terminal.terminal),
    web.get("/ws/agents/connect", agents.connect),
]
