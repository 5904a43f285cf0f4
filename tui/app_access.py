"""The console app, typed, from any widget: ``corral_app(self).api`` instead of ``self.app.api``
under a type: ignore (Textual types ``widget.app`` as the generic ``App``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.dom import DOMNode
from textual.worker import Worker

if TYPE_CHECKING:
    from tui.app import CorralApp


def corral_app(node: DOMNode) -> CorralApp:
    from tui.app import CorralApp

    app = node.app
    if not isinstance(app, CorralApp):  # pragma: no cover - a widget outside the console
        raise TypeError("this widget belongs to the Corral console")
    return app


class ReportsWorkerErrors:
    """For screens whose workers do I/O: a worker's state changes reach only its own node
    (they do not bubble), so each screen hands failures to the app, which alone turns them
    into notifications (``CorralApp.worker_failed``)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        assert isinstance(self, DOMNode)
        corral_app(self).worker_failed(event)
