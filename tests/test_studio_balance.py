"""The server's processes share requests: the least busy accepts the next (studio.balance)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tunesmith.studio import balance

pytestmark = pytest.mark.skipif(not balance.available(), reason="the balancer needs POSIX file locks")


async def _listening(accepted: list) -> asyncio.AbstractServer:
    """A real asyncio server on a free loopback port; ``accepted`` gets each connection it accepts."""

    class Accepting(asyncio.Protocol):
        def connection_made(self, transport):
            accepted.append(transport)

    return await asyncio.get_running_loop().create_server(Accepting, "127.0.0.1", 0)


async def _knock(server: asyncio.AbstractServer) -> asyncio.StreamWriter:
    """Connect to ``server`` (the kernel completes it into the backlog, accepted or not)."""
    _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    return writer


async def _settle() -> None:
    await asyncio.sleep(20 * balance.RECHECK)


def test_a_busier_process_stops_accepting_until_its_sibling_is_as_busy(tmp_path):
    async def scenario():
        balance.make_table(tmp_path, 2)
        got_a, got_b = [], []
        a, b = balance.Balancer(tmp_path, 2), balance.Balancer(tmp_path, 2)
        server_a, server_b = await _listening(got_a), await _listening(got_b)
        a.listen(server_a)
        b.listen(server_b)
        assert (a.slot, b.slot) == (0, 1)
        a.enter()
        a.enter()  # two in flight against none: a waits
        assert a.paused and not b.paused
        knock = await _knock(server_a)
        await _settle()
        assert got_a == []  # the connection waits in the backlog, unaccepted
        for _ in range(3):
            b.enter()  # now b is the busier: it waits, and a takes connections again at its next look
        assert b.paused
        await _settle()
        assert not a.paused and len(got_a) == 1
        knock_b = await _knock(server_b)
        await _settle()
        assert got_b == []
        for _ in range(3):
            b.leave()  # b idle again: it accepts
        await _settle()
        assert not b.paused and len(got_b) == 1
        a.check()  # and a (two in flight) waits from its next look (a request of its own beginning or ending)
        assert a.paused
        a.leave()
        a.leave()
        assert not a.paused and not b.paused  # as busy as each other: both accept
        for writer in (knock, knock_b):
            writer.close()
        for server in (server_a, server_b):
            server.close()
        a.close()
        b.close()

    asyncio.run(scenario())


def test_a_sibling_not_listening_or_gone_is_not_waited_for(tmp_path):
    async def scenario():
        balance.make_table(tmp_path, 3)
        a, b = balance.Balancer(tmp_path, 3), balance.Balancer(tmp_path, 3)
        server_a, server_b = await _listening([]), await _listening([])
        a.listen(server_a)
        a.enter()
        assert not a.paused  # b still starts (no slot), and slot 2 never had a process
        b.listen(server_b)
        a.check()
        assert a.paused  # b listens with nothing in flight
        b.close()  # b ends: its slot is free again
        await _settle()
        assert not a.paused
        ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        table = (tmp_path / balance.TABLE).read_bytes()
        (tmp_path / balance.TABLE).write_bytes(table[:16] + struct.pack("qq", int(ended.stdout), 0) + table[32:])
        a.check()
        assert not a.paused  # a dead process's id in slot 1, with fewer in flight: not waited for
        c = balance.Balancer(tmp_path, 3)  # the process started in its place takes its slot, afresh
        c.listen(await _listening([]))
        assert c.slot == 1 and struct.unpack("qq", (tmp_path / balance.TABLE).read_bytes()[16:32]) == (os.getpid(), 0)
        a.check()
        assert a.paused
        server_a.close()  # the server shuts down while paused: resuming leaves the closed listener alone
        for _ in range(3):
            c.enter()
        await _settle()
        assert not a.paused and not server_a.is_serving()
        for balancer in (a, c):
            balancer.close()

    asyncio.run(scenario())


def test_two_server_processes_each_take_a_slot_and_answer(tiny_checkpoint, tmp_path):
    """``tunesmith serve --processes 2`` for real: both workers listen, balanced, and answer
    generation requests; the shared folder is gone when the server stops."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path / "tmp"
    folder.mkdir()
    env = dict(os.environ, TMPDIR=str(folder))
    server = subprocess.Popen([sys.executable, "-m", "tunesmith", "serve", "--model", str(tiny_checkpoint), "--port",
                               str(port), "--processes", "2"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, table = time.monotonic() + 90, None
        while time.monotonic() < deadline:  # until both workers hold their slots (each listens)
            tables = list(folder.glob(f"tunesmith-serve-*/{balance.TABLE}"))
            if tables and all(struct.unpack("qqqq", tables[0].read_bytes())[::2]):
                table = tables[0]
                break
            assert server.poll() is None, server.stderr.read()
            time.sleep(0.2)
        assert table is not None, "the two workers did not both start listening"

        def compose(seed: int) -> int:
            return httpx.post(f"{base}/api/compose", json={"bars": 2, "seed": seed}, timeout=60).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(compose, range(16))) == [200] * 16
        pids = struct.unpack("qqqq", table.read_bytes())[::2]
        assert len(set(pids)) == 2 and server.pid not in pids  # the two workers, not the parent
        assert struct.unpack("qqqq", table.read_bytes())[1::2] == (0, 0)  # nothing in flight once answered
        info = json.loads(httpx.get(f"{base}/api/info", timeout=30).text)
        assert [m["name"] for m in info["models"]] == [Path(tiny_checkpoint).stem]
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert not list(folder.glob("tunesmith-serve-*"))
