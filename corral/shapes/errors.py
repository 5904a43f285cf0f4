"""The one error body of every refusal."""

from __future__ import annotations

from typing import Annotated, NotRequired

from typing_extensions import TypedDict

from corral.shapes.common import described, shape


@shape
class Error(TypedDict):
    """``error`` is the contract's short string (clients match on it); ``message`` one human
    sentence."""

    error: str
    message: str
    field: NotRequired[Annotated[str, described("invalid parameters: the offending field")]]
    current: NotRequired[Annotated[int, described("container limit reached: how many you have")]]
    limit: NotRequired[
        Annotated[
            int,
            described(
                "container limit reached: how many you may; guest limit reached: the guest "
                "sessions allowed at once"
            ),
        ]
    ]
    tier: NotRequired[
        Annotated[str, described("container limit reached, the tier's disk: your tier")]
    ]
    limit_mb: NotRequired[Annotated[int, described("the tier's disk: what you may hold, MB")]]
    used_mb: NotRequired[
        Annotated[int, described("the tier's disk: what your containers and kept volumes hold")]
    ]
    kept_mb: NotRequired[Annotated[int, described("the tier's disk: what your kept volumes hold")]]
    retry_after: NotRequired[
        Annotated[int, described("too many requests, guest limit reached: seconds to wait")]
    ]
    id: NotRequired[Annotated[str, described("failed to create container: its ID")]]
