"""Tar streams read and written a chunk at a time, on the event loop.

The engine's archive API speaks tar. Python's ``tarfile`` reads only blocking file objects, so
the reader here parses the stream's 512-byte headers itself (``TarInfo.frombuf`` for the header
block; PAX ``x`` records and GNU ``L``/``K`` long names on top, as Go's archive/tar writes them
for long, non-ASCII or newline-carrying names) and hands out each member's data as it arrives.
Nothing is held but the current header and one chunk.
"""

from __future__ import annotations

import tarfile
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

BLOCK = 512
END_OF_ARCHIVE = bytes(2 * BLOCK)


class TarFormatError(ValueError):
    """The stream is not the tar the engine should send."""


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    mode: int  # permission bits (and set-id, sticky)
    mtime: float
    kind: bytes  # tarfile's type: REGTYPE, DIRTYPE, SYMTYPE, ...
    linkname: str

    @property
    def is_dir(self) -> bool:
        return self.kind == tarfile.DIRTYPE

    @property
    def is_file(self) -> bool:
        return self.kind in (tarfile.REGTYPE, tarfile.AREGTYPE)


def _padding(size: int) -> int:
    return -size % BLOCK


class TarReader:
    """Members of a tar stream, in order: ``async for member in reader``, reading (``data``) or
    leaving each member's data before asking for the next (what is left is skipped)."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._left = 0  # data (with padding) of the current member not yet consumed
        self._done = False

    async def _fill(self, count: int) -> bool:
        while len(self._buffer) < count:
            chunk = await anext(self._chunks, None)
            if chunk is None:
                return False
            self._buffer += chunk
        return True

    async def _take(self, count: int) -> bytes:
        if not await self._fill(count):
            raise TarFormatError("the tar stream ended in the middle of a member")
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken

    async def _skip(self, count: int) -> None:
        while count:
            if not self._buffer and not await self._fill(1):
                raise TarFormatError("the tar stream ended in the middle of a member")
            step = min(count, len(self._buffer))
            del self._buffer[:step]
            count -= step

    def __aiter__(self) -> TarReader:
        return self

    async def __anext__(self) -> Member:
        member = await self.next()
        if member is None:
            raise StopAsyncIteration
        return member

    async def next(self) -> Member | None:
        """The next member's header (its data not read), or None at the end."""
        await self._skip(self._left)
        self._left = 0
        pax: dict[str, str] = {}
        long_name: str | None = None
        long_link: str | None = None
        while not self._done:
            if not await self._fill(BLOCK):
                self._done = True
                break
            block = await self._take(BLOCK)
            if block == bytes(BLOCK):
                self._done = True
                break
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.HeaderError as exc:
                raise TarFormatError(f"a tar header could not be read: {exc}") from exc
            if info.type in (
                tarfile.XHDTYPE,
                tarfile.XGLTYPE,
                tarfile.GNUTYPE_LONGNAME,
                tarfile.GNUTYPE_LONGLINK,
            ):
                payload = await self._take(info.size)
                await self._skip(_padding(info.size))
                if info.type == tarfile.XHDTYPE:
                    pax.update(_pax_records(payload))
                elif info.type == tarfile.GNUTYPE_LONGNAME:
                    long_name = _c_string(payload)
                elif info.type == tarfile.GNUTYPE_LONGLINK:
                    long_link = _c_string(payload)
                continue
            size = int(pax.get("size", info.size))
            member = Member(
                name=pax.get("path", long_name if long_name is not None else info.name),
                size=size,
                mode=info.mode,
                mtime=float(pax.get("mtime", info.mtime)),
                kind=info.type,
                linkname=pax.get("linkpath", long_link if long_link is not None else info.linkname),
            )
            self._left = size + _padding(size) if member.kind not in _NO_DATA else 0
            return member
        return None

    async def data(self, member: Member) -> AsyncGenerator[bytes, None]:
        """The current member's data, in the chunks it arrives in (passed on without a copy
        where a chunk lies wholly inside it)."""
        remaining = member.size
        while remaining:
            if self._buffer:
                step = min(remaining, len(self._buffer))
                piece = bytes(self._buffer[:step])
                del self._buffer[:step]
            else:
                chunk = await anext(self._chunks, None)
                if chunk is None:
                    raise TarFormatError("the tar stream ended in the middle of a member")
                piece = chunk if len(chunk) <= remaining else chunk[:remaining]
                self._buffer += chunk[len(piece) :]
            remaining -= len(piece)
            self._left -= len(piece)
            yield piece


# Types whose size field does not announce data that follows.
_NO_DATA = frozenset(
    {
        tarfile.LNKTYPE,
        tarfile.SYMTYPE,
        tarfile.DIRTYPE,
        tarfile.CHRTYPE,
        tarfile.BLKTYPE,
        tarfile.FIFOTYPE,
    }
)


def _c_string(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(payload: bytes) -> dict[str, str]:
    """``"%d %s=%s\\n"`` records; the length counts the whole record."""
    records: dict[str, str] = {}
    position = 0
    while position < len(payload):
        space = payload.find(b" ", position)
        if space < 0:
            break
        try:
            length = int(payload[position:space])
        except ValueError as exc:
            raise TarFormatError("a PAX header could not be read") from exc
        if length <= 0:
            break
        record = payload[space + 1 : position + length - 1]
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


def file_header(name: str, size: int, mode: int = 0o644, mtime: float = 0.0) -> bytes:
    """The header (PAX where the name needs it: long, non-ASCII, control characters) of a
    regular file ``name`` of ``size`` bytes."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = int(mtime)
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def directory_header(name: str, mode: int = 0o755, mtime: float = 0.0) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = int(mtime)
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def padding(size: int) -> bytes:
    """The zeros that end a member's data on a block boundary."""
    return bytes(_padding(size))
