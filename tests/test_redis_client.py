"""The Redis client's guard against redis-py leaking a transport's AttributeError or
TypeError when a connection closes under a write (redis/redis-py#4287): it must
surface as a ConnectionError (a counted MessageBus error), never end a loop."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from nautilus_wire.redis_client import BUS_ERRORS, _Connection


class _ClosedUnderWrite(_Connection):
    """A connection whose writer another task tears down between redis-py's "is it
    connected?" and its write: the race, made deterministic."""

    pretend = False

    @property
    def is_connected(self) -> bool:
        if self.pretend:  # the check saw it connected ...
            self.pretend = False
            return True
        return self._reader is not None and self._writer is not None


async def test_a_writer_closed_under_a_write_is_a_connection_error(redis_session) -> None:
    conn = _ClosedUnderWrite(port=redis_session.port, socket_timeout=1.0)
    await conn.connect()
    conn._writer = None  # ... and by the write it was gone
    conn.pretend = True
    with pytest.raises(RedisConnectionError, match="connection closed while writing") as info:
        await conn.send_packed_command(b"*1\r\n$4\r\nPING\r\n", check_health=False)
    assert isinstance(info.value, BUS_ERRORS)
    assert isinstance(info.value.__cause__, AttributeError)


class _OwnBug(_Connection):
    broken = False

    async def _send_packed_command(self, command) -> None:
        if self.broken:
            raise AttributeError("a bug of ours")
        await super()._send_packed_command(command)


async def test_our_own_attribute_errors_are_not_hidden(redis_session) -> None:
    conn = _OwnBug(port=redis_session.port, socket_timeout=1.0)
    await conn.connect()
    conn.broken = True
    with pytest.raises(AttributeError, match="a bug of ours"):
        await conn.send_packed_command(b"*1\r\n$4\r\nPING\r\n", check_health=False)
    await conn.disconnect()
