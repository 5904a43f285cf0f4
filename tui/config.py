"""The console's own settings: a TOML file under the XDG config home.

It holds where to connect (``server``, ``token``), the chosen theme (remembered when changed), and
key overrides (``[keys]``, binding ID → keys). Defaults are written out on first run so a user can
see what there is to change.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_THEME = "textual-dark"

TEMPLATE = """\
# Corral console settings. Remove a line to get its default back.

# Connect to a remote backend instead of the embedded one (or use --server/--token,
# or CORRAL_SERVER/CORRAL_TOKEN).
# server = "http://127.0.0.1:8420"
# token = "crl_..."

theme = "{theme}"

[keys]
# Override a binding: its ID = the keys, comma-separated. IDs:
{ids}
# start = "s,f5"
"""


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "corral"


@dataclass
class ConsoleConfig:
    path: Path
    theme: str = DEFAULT_THEME
    server: str | None = None
    token: str | None = None
    keys: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> ConsoleConfig:
        path = path or config_dir() / "console.toml"
        raw: dict[str, Any] = {}
        if path.is_file():
            try:
                raw = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError:
                raw = {}
        keys = raw.get("keys") if isinstance(raw.get("keys"), dict) else {}
        return cls(
            path=path,
            theme=str(raw.get("theme", DEFAULT_THEME)),
            server=raw.get("server") if isinstance(raw.get("server"), str) else None,
            token=raw.get("token") if isinstance(raw.get("token"), str) else None,
            keys={str(k): str(v) for k, v in (keys or {}).items()},
        )

    def ensure_written(self) -> None:
        """Write the commented defaults once, so there is a file to edit."""
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(TEMPLATE.format(theme=self.theme, ids=_wrapped_ids()))

    def save_theme(self, theme: str) -> None:
        """Remember the theme, changing only that line of the user's file."""
        self.theme = theme
        self.ensure_written()
        lines = self.path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("theme") and "=" in line:
                lines[i] = f'theme = "{theme}"'
                break
        else:
            lines.insert(0, f'theme = "{theme}"')
        self.path.write_text("\n".join(lines) + "\n")


def _wrapped_ids() -> str:
    """The binding IDs from the action registry, as comment lines."""
    import textwrap

    from tui.actions import key_ids

    return "\n".join(f"# {line}" for line in textwrap.wrap(key_ids(), 94))
