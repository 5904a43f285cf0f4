"""The placement rule (``backend.engines.placement``), on its own: no engine needed."""

from __future__ import annotations

import pytest

from backend.engines.placement import Candidate, choose
from backend.errors import DockerUnavailable, NoEngineAvailable, UnsupportedImage


def _engine(name: str, total: int | None = 4096, placed: int = 0, **changes: bool) -> Candidate:
    facts = {"reachable": True, "runtime": True, "draining": False, "has_image": True, **changes}
    return Candidate(name=name, memory_total_mb=total, memory_placed_mb=placed, **facts)


def test_the_most_free_memory_wins_and_a_tie_goes_to_the_first_name() -> None:
    assert choose([_engine("a", placed=2048), _engine("b", placed=1024)], 512, "img") == "b"
    assert choose([_engine("b"), _engine("a")], 512, "img") == "a"
    # A bigger engine with more placed can still have the most free.
    assert choose([_engine("a", 2048), _engine("b", 8192, placed=4096)], 512, "img") == "b"


def test_engines_that_cannot_take_it_are_passed_over() -> None:
    candidates = [
        _engine("down", reachable=False),
        _engine("drained", draining=True),
        _engine("bare", runtime=False),
        _engine("imageless", has_image=False),
        _engine("full", total=1024, placed=768),
        _engine("roomy", total=1024, placed=512),
    ]
    assert choose(candidates, 512, "img") == "roomy"


def test_none_with_room_is_no_engine_available_saying_why_each() -> None:
    with pytest.raises(NoEngineAvailable) as refused:
        choose([_engine("a", draining=True), _engine("b", 1024, placed=1000)], 512, "img")
    assert refused.value.status == 503
    assert "a is drained" in refused.value.message
    assert "b has 24 MB of memory free" in refused.value.message


def test_none_reachable_is_docker_unavailable() -> None:
    with pytest.raises(DockerUnavailable):
        choose([_engine("a", reachable=False), _engine("b", reachable=False)], 512, "img")
    with pytest.raises(DockerUnavailable):
        choose([], 512, "img")  # a tier pinned to engines none of which is configured


def test_an_image_no_engine_has_is_unsupported_image_as_with_one_engine() -> None:
    with pytest.raises(UnsupportedImage, match="'img' is not built"):
        choose([_engine("a", has_image=False), _engine("b", has_image=False)], 512, "img")
