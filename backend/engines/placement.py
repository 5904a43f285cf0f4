"""Where a new sandbox goes. The rule, in order:

1. only the engines the user's tier allows (``engines`` on a tier pins it; empty: all), or the
   one engine holding the kept volume the sandbox is made on (volumes stay on their host);
2. only those that answer (none answering: 503 ``docker unavailable``);
3. only those that have the runtime, are not drained, have the image, and have room: memory
   total minus the ``memory_mb`` of the sandboxes placed there that run or are being made (a
   stopped one holds no memory) at least the memory asked for (none: 503 ``no engine
   available``, the message saying why each was passed over);
4. of those, the one with the most free memory; a tie goes to the first name in sort order.

Pure: the caller gathers each engine's facts (``Candidate``) and this decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backend.errors import DockerUnavailable, NoEngineAvailable, UnsupportedImage


@dataclass(frozen=True)
class Candidate:
    name: str
    reachable: bool
    runtime: bool
    draining: bool
    has_image: bool
    memory_total_mb: int | None
    memory_placed_mb: int

    @property
    def free_mb(self) -> int | None:
        if self.memory_total_mb is None:
            return None
        return self.memory_total_mb - self.memory_placed_mb

    def refusal(self, memory_mb: int) -> str | None:
        """Why this engine cannot take a sandbox of ``memory_mb``, or None when it can."""
        if not self.runtime:
            return "lacks the runtime"
        if self.draining:
            return "is drained"
        if not self.has_image:
            return "does not have the image"
        free = self.free_mb
        if free is None or free < memory_mb:
            return f"has {max(free or 0, 0)} MB of memory free"
        return None


def choose(candidates: Sequence[Candidate], memory_mb: int, image: str) -> str:
    """The engine a sandbox of ``memory_mb`` on ``image`` goes to (see the module's rule). When
    the image is what every engine lacks, the answer is the one a single engine gave before
    (400 ``unsupported image``)."""
    reachable = [c for c in candidates if c.reachable]
    if not reachable:
        raise DockerUnavailable(
            "No Docker engine a new sandbox may be placed on can be reached; nothing was changed."
        )
    refusals = {c.name: c.refusal(memory_mb) for c in reachable}
    fit = [c for c in reachable if refusals[c.name] is None]
    if not fit and all(c.runtime and not c.has_image for c in reachable):
        raise UnsupportedImage(
            f"Image {image!r} is not built on this host; an operator can build it with "
            "'just images'."
        )
    if not fit:
        why = "; ".join(f"{name} {reason}" for name, reason in sorted(refusals.items()))
        raise NoEngineAvailable(
            f"No engine can take a sandbox of {memory_mb} MB now ({why}); nothing was changed."
        )
    best = min(fit, key=lambda c: (-(c.free_mb or 0), c.name))
    return best.name
