"""Form fields for the create and settings forms: each resource shows the range the backend
reports for the user's tier, and says what is wrong next to the field as the user types."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.validation import Function, ValidationResult, Validator
from textual.widgets import Input, Label, Static

NAME_HELP = "1-64 letters, digits and hyphens, not starting with a hyphen"


def valid_name(value: str) -> bool:
    import re

    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}", value))


class InRange(Validator):
    def __init__(self, low: int, high: int, what: str) -> None:
        super().__init__()
        self.low, self.high, self.what = low, high, what

    def validate(self, value: str) -> ValidationResult:
        try:
            number = int(value)
        except ValueError:
            return self.failure(f"{self.what} must be a whole number")
        if not self.low <= number <= self.high:
            if self.low == self.high:
                return self.failure(f"{self.what} must be {self.low} on your tier")
            return self.failure(f"{self.what} must be between {self.low} and {self.high}")
        return self.success()


class Field(Vertical):
    """A label, an input and the message for it."""

    def __init__(
        self,
        label: str,
        field_id: str,
        value: str,
        validators: list[Any],
        hint: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(classes="field", **kwargs)
        self._label = label
        self._field_id = field_id
        self._value = value
        self._validators = validators
        self._hint = hint

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-row"):
            yield Label(self._label, classes="field-label")
            yield Input(
                value=self._value,
                id=self._field_id,
                validators=self._validators,
                validate_on=["changed", "submitted"],
                valid_empty=False,
                compact=True,
            )
        yield Static(self._hint, classes="field-hint")

    def on_input_changed(self, event: Input.Changed) -> None:
        result = event.validation_result
        hint = self.query_one(".field-hint", Static)
        if result is None or result.is_valid:
            hint.update(self._hint)
            hint.remove_class("invalid")
        else:
            hint.update(" ".join(result.failure_descriptions))
            hint.add_class("invalid")

    def show_error(self, message: str) -> None:
        hint = self.query_one(".field-hint", Static)
        hint.update(message)
        hint.add_class("invalid")

    @property
    def input(self) -> Input:
        return self.query_one(Input)


def name_field(value: str = "", optional: bool = False) -> Field:
    check = Function(lambda text: (optional and text == "") or valid_name(text), NAME_HELP)
    return Field(
        "Name", "name", value, [check], NAME_HELP + (" (empty: generated)" if optional else "")
    )


def resource_field(resource: str, limits: dict[str, Any], value: int | None) -> Field:
    """A resource input whose range comes from the backend (``/api/me``'s ``limits``)."""
    spec = limits.get(resource) or {}
    low, high = int(spec.get("min", 0)), int(spec.get("max", 0))
    labels = {
        "memory_mb": ("Memory", "MB"),
        "cpu_shares": ("CPU", "millicores"),
        "disk_mb": ("Disk", "MB"),
    }
    what, unit = labels[resource]
    shown = value if value is not None else spec.get("default", low)
    return Field(
        f"{what} ({unit})",
        resource,
        str(shown),
        [InRange(low, high, resource)],
        f"{low}–{high} {unit} on your tier",
    )
