"""The details pane: everything about the selected row, its limits against the tier's, and its
recent events; a progress bar while a long operation runs."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import ProgressBar, Static

from corral.shapes import Status, is_agent
from tui import formatting as fmt


def _range(limits: dict[str, Any], resource: str, value: Any, unit: Any) -> str:
    shown = str(unit(value))
    spec = limits.get(resource) if limits else None
    if isinstance(spec, dict):
        return f"{shown}  ({unit(spec.get('min'))}–{unit(spec.get('max'))})"
    return shown


LABEL_WIDTH = 11


def live(container: dict[str, Any] | None, history: list[dict[str, Any]]) -> Table | Text:
    """What changes by the second: uptime, and the usage from the stats stream (the latest
    sample, and a sparkline of the recent ones). Drawn apart from the rest of the pane, so the
    clock and a new sample redraw these lines only."""
    if container is None or container.get("status") != Status.RUNNING:
        return Text("")
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold dim", no_wrap=True, width=LABEL_WIDTH)
    table.add_column(no_wrap=True)
    table.add_row("Uptime", fmt.uptime(container))
    if not history:
        return table
    latest = history[-1]
    recent = history[-30:]
    cpu = [float(s.get("cpu_percent") or 0) for s in recent]
    memory = [float(s.get("memory_used_mb") or 0) for s in recent]
    limit = (container.get("resources") or {}).get("memory_mb")
    cores = ((container.get("resources") or {}).get("cpu_shares") or 1000) / 10
    table.add_row(
        "CPU used",
        Text.assemble(
            f"{latest.get('cpu_percent', 0):.0f}%  ", (fmt.sparkline(cpu, cores), "green")
        ),
    )
    table.add_row(
        "Memory used",
        Text.assemble(
            f"{fmt.megabytes(round(latest.get('memory_used_mb') or 0))}  ",
            (fmt.sparkline(memory, float(limit) if limit else None), "cyan"),
        ),
    )
    return table


def _recent(recent: list[dict[str, Any]]) -> Text:
    lines = []
    for message in recent[-6:]:
        time = fmt.parse_time(message.get("timestamp"))
        stamp = time.astimezone().strftime("%H:%M:%S") if time else "--:--:--"
        kind = str(message.get("type", ""))
        payload = message.get("container") or {}
        extra = payload.get("message") or payload.get("status") or ""
        lines.append(
            Text.assemble(
                (stamp, "dim"),
                " ",
                (fmt.short_event(kind), fmt.EVENT_STYLE.get(kind, "")),
                " ",
                str(extra),
                no_wrap=True,
                overflow="ellipsis",
            )
        )
    events = Text("\n", no_wrap=True, overflow="ellipsis").join(lines)
    events.no_wrap, events.overflow = True, "ellipsis"
    return events if recent else Text("—", style="dim")


def describe(
    container: dict[str, Any] | None,
    limits: dict[str, Any],
    recent: list[dict[str, Any]],
    history: list[dict[str, Any]] | None = None,
) -> Table | Text:
    if container is None:
        return Text("No container selected. Press n to create one.", style="dim")
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold dim", no_wrap=True, width=LABEL_WIDTH)
    table.add_column()
    resources = container.get("resources") or {}
    table.add_row("Name", str(container.get("name")))
    table.add_row("Status", fmt.status_cell(str(container.get("status"))))
    if container.get("error"):
        table.add_row("Problem", Text(str(container["error"]), style="red"))
    if is_agent(container):
        table.add_row("ID", str(container.get("id")))
        agent = container.get("agent") or {}
        table.add_row("Host", f"{agent.get('hostname', '—')} ({agent.get('os', '—')})")
        table.add_row(
            "Machine",
            f"{agent.get('arch', '—')}, {agent.get('cpus', '—')} CPU, "
            f"{fmt.megabytes(agent.get('memory_mb'))}",
        )
        load = agent.get("load") or {}
        if load:
            table.add_row("Load", " ".join(f"{load.get(k, 0):.2f}" for k in ("1m", "5m", "15m")))
    else:
        # Which ID is which: the database ID never changes; the Docker ID does at every rebuild.
        table.add_row("ID (stable)", Text(str(container.get("db_id", "—"))))
        table.add_row("Docker ID", Text(str(container.get("id")), style="dim"))
        table.add_row("Image", str(container.get("image")))
        role = fmt.role_cell(container)
        if container.get("role_error"):
            role += f" — {container['role_error']}"
        table.add_row("Role", role)
        table.add_row(
            "Memory", _range(limits, "memory_mb", resources.get("memory_mb"), fmt.megabytes)
        )
        table.add_row(
            "CPUs", _range(limits, "cpu_shares", resources.get("cpu_shares"), fmt.millicores)
        )
        table.add_row("Disk", _range(limits, "disk_mb", resources.get("disk_mb"), fmt.megabytes))
        table.add_row("Volume", str(container.get("volume", "—")))
        table.add_row("Runtime", str(container.get("runtime", "—")))
    table.add_row("Created", fmt.local_time(container.get("created_at")))
    table.add_row("Last used", fmt.local_time(container.get("last_used_at")))
    return table


def recent_events(container: dict[str, Any] | None, recent: list[dict[str, Any]]) -> Table | Text:
    if container is None:
        return Text("")
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold dim", no_wrap=True, width=LABEL_WIDTH)
    table.add_column()
    table.add_row("Recent", _recent(recent))
    return table


class DetailsPane(VerticalScroll):
    """Redrawn only when what it shows changed, and laid out again only when its height did:
    a layout of the whole screen costs far more than drawing the pane (the clock and the
    usage samples ask for a redraw every second or two)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: tuple[Any, ...] | None = None
        self._moving: tuple[Any, ...] | None = None
        self._latest: tuple[Any, ...] | None = None
        self._lines: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="details-body")
        yield Static(id="details-live")
        yield Static(id="details-recent")
        yield ProgressBar(total=100, show_eta=False, id="details-progress")

    def show(
        self,
        container: dict[str, Any] | None,
        limits: dict[str, Any],
        recent: list[dict[str, Any]],
        progress: dict[str, Any] | None,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        history = history or []
        if (id(container), id(limits)) != self._shown:
            self._shown = (id(container), id(limits))
            self._draw("#details-body", describe(container, limits, recent, history))
        latest = (id(container), len(recent), id(recent[-1]) if recent else None)
        if latest != self._latest:
            self._latest = latest
            self._draw("#details-recent", recent_events(container, recent))
        moving = (
            id(container),
            id(history[-1]) if history else None,
            fmt.uptime(container) if container else None,
        )
        if moving != self._moving:
            self._moving = moving
            self._draw("#details-live", live(container, history))
        bar = self.query_one("#details-progress", ProgressBar)
        active = (
            progress is not None
            and not progress.get("complete")
            and isinstance(progress.get("progress"), int)
        )
        bar.display = active
        if active and progress is not None:
            bar.update(progress=int(progress.get("progress", 0)))
            bar.tooltip = str(progress.get("message", ""))

    def _draw(self, selector: str, body: Table | Text) -> None:
        static = self.query_one(selector, Static)
        width = static.content_region.width
        if width <= 0:
            static.update(body)
            return
        console = self.app.console
        lines = len(console.render_lines(body, console.options.update_width(width), pad=False))
        static.update(body, layout=lines != self._lines.get(selector))
        self._lines[selector] = lines
