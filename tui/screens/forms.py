"""What the create and settings forms share: reading validated fields, showing a backend error
where it belongs (next to its field when the error names one), and a progress line."""

from __future__ import annotations

from typing import Any

from textual.screen import ModalScreen
from textual.widgets import Input, ProgressBar, Static

from corral.client import ApiError
from tui.widgets.fields import Field


class FormScreen(ModalScreen[Any]):
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
        self.query_one("#form-error", Static).update(f"{error.error}: {error.message}")
        if error.field:
            for field in self.query(Field):
                if field.input.id == error.field:
                    field.show_error(error.message)

    def show_error(self, text: str) -> None:
        self.busy(False)
        self.query_one("#form-error", Static).update(text)

    def busy(self, running: bool, text: str = "", progress: int | None = None) -> None:
        bar = self.query_one("#form-progress", ProgressBar)
        bar.display = running
        if running:
            bar.update(total=100 if progress is not None else None, progress=progress or 0)
            self.query_one("#form-error", Static).update("")
        self.query_one("#form-status", Static).update(text)
        for button in self.query("Button.submit"):
            button.disabled = running

    def action_cancel(self) -> None:
        self.dismiss(None)
