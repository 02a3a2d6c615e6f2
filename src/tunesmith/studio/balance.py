"""The least busy server process accepts the next request (``tunesmith serve --processes N``).

The processes share one listening socket, and a new connection goes to whichever process
accepts it first, which does not follow the load: under the load test the requests in flight
per process differed by four or more half of the time, and the busier process's requests waited
on its longer steps. Now each process counts its compose and regenerate requests in flight in
a table the processes share (a file, mapped in memory: per process its id and its count) and,
looking at it whenever one of its own requests begins or ends, stops accepting while a live
sibling has fewer in flight, so the next connection goes to a process with the fewest (under
the load test the counts now differ by four or more 1% of the time). Those answers close their
connections (:class:`tunesmith.studio.app.CloseAfterGeneration`), so each such request is
accepted afresh: this balances requests, not only connections. Measured in BENCHMARKS.md ("Studio").

At any moment some process has no sibling with fewer in flight, and it accepts: a paused process
looks again every :data:`RECHECK` seconds (a sibling may have become busier, or stopped). Each
process takes a slot of the table (a lock it holds until it exits) when it starts listening and
writes its process id there; a sibling not listening yet, or whose process is gone, is not waited
for, and the process started in a dead one's place takes its slot.

Pausing takes the listening sockets' readers off the event loop (``loop.remove_reader``);
resuming has asyncio's ``Server`` start serving on them again (``Server._start_serving``, a
private method of CPython's asyncio since 3.7). Where it is missing, a process never pauses.
"""

from __future__ import annotations

import asyncio
import mmap
import os
from pathlib import Path

RECHECK = 0.002  # seconds between a paused process's looks at its siblings
LIVENESS = 0.5  # seconds a sibling is taken as alive after it was last seen to be
TABLE = "load"  # the shared table's file name in the server's folder


def available() -> bool:
    """Whether this platform has the file locks the balancer needs (POSIX)."""
    try:
        import fcntl  # noqa: F401
    except ImportError:
        return False
    return True


def make_table(folder: str | Path, processes: int) -> None:
    """The shared table in ``folder`` (by the parent, before its workers start): per process its
    id (0: no process) and its requests in flight."""
    (Path(folder) / TABLE).write_bytes(bytes(16 * processes))


class Balancer:
    """One server process's side: its slot of the table, its requests in flight, its listeners."""

    def __init__(self, folder: str | Path, processes: int):
        self.folder, self.processes = Path(folder), processes
        self.slot: int | None = None  # taken when the process starts listening
        self.in_flight = 0
        self.servers: list[asyncio.AbstractServer] = []
        self.paused = False
        self._lock = self._map = self.table = None
        self._rechecking = False
        self._alive: dict[int, tuple[int, float]] = {}  # sibling slot → (its process id, when seen alive)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Balance every server ``loop.create_server`` makes from now on (uvicorn makes its
        listener in the loop that loads the app, after loading it)."""
        create = loop.create_server

        async def create_server(*args, **kwargs):
            server = await create(*args, **kwargs)
            self.listen(server)
            return server

        loop.create_server = create_server

    def listen(self, server: asyncio.AbstractServer) -> None:
        """Balance ``server`` (an asyncio server already serving); the first one takes this
        process's slot of the table, so siblings wait for it only from now on."""
        if not hasattr(server, "_start_serving"):  # not CPython's asyncio Server: never paused
            return
        if self.slot is None:
            self._take_slot()
        self.servers.append(server)

    def _take_slot(self) -> None:
        import fcntl

        for slot in range(self.processes):
            handle = open(self.folder / f"slot-{slot}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a sibling holds it
                handle.close()
                continue
            with open(self.folder / TABLE, "r+b") as table:
                self._map = mmap.mmap(table.fileno(), 16 * self.processes)
            self.table = memoryview(self._map).cast("q")  # slot s: [2s] its process id, [2s + 1] its count
            self.table[2 * slot + 1] = self.in_flight  # a dead process's slot starts afresh
            self.table[2 * slot] = os.getpid()
            self.slot, self._lock = slot, handle  # the lock is held (the file open) for the process's life
            return
        raise RuntimeError(f"all {self.processes} balancing slots in {self.folder} are taken")

    def close(self) -> None:
        """Give up the slot (a process that ends frees it in any case)."""
        if self._lock is not None:
            self.table[2 * self.slot] = 0
            self.table.release()
            self._map.close()
            self._lock.close()
            self.slot = self._lock = self._map = self.table = None

    def enter(self) -> None:
        """A request began in this process (called in its event loop)."""
        self.in_flight += 1
        self.check()

    def leave(self) -> None:
        """A request ended in this process (called in its event loop)."""
        self.in_flight -= 1
        self.check()

    def check(self) -> None:
        """Accept while no live sibling has fewer requests in flight; else pause and look again soon."""
        if self.slot is None:
            return
        table, mine = self.table, self.in_flight
        table[2 * self.slot + 1] = mine
        if any(table[2 * s + 1] < mine and self._is_alive(s) for s in range(self.processes) if s != self.slot):
            self._pause()
            if not self._rechecking:
                self._rechecking = True
                asyncio.get_running_loop().call_later(RECHECK, self._recheck)
        else:
            self._resume()

    def _recheck(self) -> None:
        self._rechecking = False
        self.check()

    def _is_alive(self, slot: int) -> bool:
        """Whether a sibling listens in ``slot``: its process id is written there and the process
        exists (looked at once per :data:`LIVENESS` while it does)."""
        pid, now = self.table[2 * slot], asyncio.get_running_loop().time()
        seen = self._alive.get(slot)
        if seen is not None and seen[0] == pid and now - seen[1] < LIVENESS:
            return True
        if pid <= 0:  # not started, or gave its slot up
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists (another user's process now has the id: taken as alive until replaced)
            pass
        self._alive[slot] = (pid, now)
        return True

    def _pause(self) -> None:
        if self.paused:
            return
        loop = asyncio.get_running_loop()
        for server in self.servers:
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
        self.paused = True

    def _resume(self) -> None:
        if not self.paused:
            return
        for server in self.servers:
            if server.sockets:  # not closed (uvicorn shutting down)
                server._serving = False  # so that it starts serving again on the same sockets
                server._start_serving()
        self.paused = False
