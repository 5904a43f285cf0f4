"""What the create and settings forms share: reading validated fields, showing a backend error
where it belongs (next to its field when the error names one), and a progress line."""

from __future__ import annotations

from typing import Any

from textual.screen import ModalScreen
from textual.widgets import Input, ProgressBar, Static

from corral.client import ApiError
from tui.app_access import ReportsWorkerErrors
from tui.widgets.fields import Field, humanize


class FormScreen(ReportsWorkerErrors, ModalScreen[Any]):
    BINDINGS = [("escape", "cancel", "Cancel")]

    def fields_valid(self) -> bool:
        ok = True
        for field in self.query(Field):
            result = field.input.validate(field.input.value)
            if result is not None and not result.is_valid:
                field.show_error(" ".join(result.failure_descriptions))
                ok = False
        return ok

    def int_value(self, field_id: str) -> int:
        return int(self.query_one(f"#{field_id}", Input).value)

    def show_api_error(self, error: ApiError) -> None:
        """A refusal appears in the form, next to its field when it names one."""
        self.busy(False)
        self.query_one("#form-error", Static).update(humanize(f"{error.error}: {error.message}"))
        if error.field:
            for field in self.query(Field):
                if field.input.id == error.field:
                    field.show_error(error.message)
                    field.input.focus()

    def show_error(self, text: str) -> None:
        self.busy(False)
        self.query_one("#form-error", Static).update(text)

    def clear_error(self) -> None:
        self.query_one("#form-error", Static).update("")

    def busy(self, running: bool, text: str = "", progress: int | None = None) -> None:
        """Show what runs: a bar when the backend says how far it is, the words alone when it
        does not (an indeterminate bar would show "--%")."""
        bar = self.query_one("#form-progress", ProgressBar)
        bar.display = running and progress is not None
        if running:
            bar.update(total=100, progress=progress or 0)
            self.clear_error()
        self.query_one("#form-status", Static).update(text)
        for button in self.query("Button.submit"):
            button.disabled = running

    def action_cancel(self) -> None:
        self.dismiss(None)
