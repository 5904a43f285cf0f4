"""Form fields for the create and settings forms: one line each (label, input, the range the
backend reports for the user's tier), and under it, only while it is wrong, what is wrong.
One line per field keeps both forms, their buttons and their errors inside an 80x24 terminal."""

from __future__ import annotations

import re
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.validation import Function, ValidationResult, Validator
from textual.widgets import Input, Label, Static

from corral.shapes.containers import CONTAINER_NAME_PATTERN

NAME_HELP = "letters, digits, hyphens"
NAME_RULE = "1-64 letters, digits and hyphens, not starting with a hyphen"
# The resource fields: label, unit, and how the backend names them in its messages.
RESOURCES: dict[str, tuple[str, str]] = {
    "memory_mb": ("Memory", "MB"),
    "cpu_shares": ("CPU", "millicores"),
    "disk_mb": ("Disk", "MB"),
}


def valid_name(value: str) -> bool:
    return bool(re.fullmatch(CONTAINER_NAME_PATTERN, value))


def humanize(message: str) -> str:
    """A backend message in people's words: ``memory_mb must be ...`` → ``Memory must be ...``."""
    for key, (label, unit) in RESOURCES.items():
        message = re.sub(rf"\b{key}\b", f"{label} ({unit})", message)
    return message


class InRange(Validator):
    def __init__(self, low: int, high: int, what: str, unit: str) -> None:
        super().__init__()
        self.low, self.high, self.what, self.unit = low, high, what, unit

    def validate(self, value: str) -> ValidationResult:
        try:
            number = int(value)
        except ValueError:
            return self.failure(f"{self.what} must be a whole number of {self.unit}")
        if not self.low <= number <= self.high:
            if self.low == self.high:
                return self.failure(f"{self.what} must be {self.low} {self.unit} on your tier")
            return self.failure(
                f"{self.what} must be between {self.low} and {self.high} {self.unit}"
            )
        return self.success()


class Field(Vertical):
    """A label, an input and its hint on one line; the problem, when there is one, below."""

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
            yield Static(self._hint, classes="field-range")
        yield Static("", classes="field-hint")

    def on_mount(self) -> None:
        self.query_one(".field-hint").display = False

    def on_input_changed(self, event: Input.Changed) -> None:
        result = event.validation_result
        if result is None or result.is_valid:
            self.clear_error()
        else:
            self.show_error(" ".join(result.failure_descriptions))

    def show_error(self, message: str) -> None:
        hint = self.query_one(".field-hint", Static)
        hint.update(humanize(message))
        hint.display = True

    def clear_error(self) -> None:
        self.query_one(".field-hint").display = False

    @property
    def input(self) -> Input:
        return self.query_one(Input)


def name_field(value: str = "", optional: bool = False) -> Field:
    check = Function(lambda text: (optional and text == "") or valid_name(text), NAME_RULE)
    return Field("Name", "name", value, [check], "empty: made up" if optional else NAME_HELP)


def resource_field(resource: str, limits: dict[str, Any], value: int | None) -> Field:
    """A resource input whose range comes from the backend (``/api/me``'s ``limits``)."""
    spec = limits.get(resource) or {}
    low, high = int(spec.get("min", 0)), int(spec.get("max", 0))
    what, unit = RESOURCES[resource]
    shown = value if value is not None else spec.get("default", low)
    return Field(
        f"{what} ({unit})",
        resource,
        str(shown),
        [InRange(low, high, what, unit)],
        f"{low}–{high}",
    )
