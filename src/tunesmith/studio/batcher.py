"""The studio's micro-batcher: compose requests that arrive together are decoded as one pass.

Generation is Python-bound, so twenty clients composing at once would otherwise queue behind
one another (the GIL lets one decode run at a time). Here a compose request joins the waiting
requests with the same batch key (same model, every setting but the seed); a pass starts
``window`` seconds after the first of them arrived, waits until no other pass of that key runs
and a generation slot is free, and takes every request then waiting (at most ``max_rows``): under
load, requests gather while the previous pass decodes, so passes grow instead of competing. Each request still gets the melody it would get alone
(:mod:`tunesmith.generate.batch` gives each row its own seeded random stream).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable, Hashable

import anyio
from fastapi import HTTPException

from tunesmith.errors import TunesmithError

log = logging.getLogger("tunesmith.studio")

WINDOW = 0.01  # seconds a pass waits for more requests after its first one (10 ms)


class Later:
    """An answer ``work`` could not finish in its pass (a compose that missed its form and is
    composed again): ``function()`` gives it, run in its own thread job after the pass, so the
    other requests of the pass are answered (and the next pass starts) without waiting for it."""

    def __init__(self, function: Callable[[], Any]):
        self.function = function


class Batcher:
    """Collects compatible requests and runs ``work(key, items)`` on each batch in a thread.

    ``work`` returns one answer per item, in order: a result, or a TunesmithError for that item.
    ``slots`` is the app's semaphore of generation jobs: a pass holds one while it runs.
    """

    def __init__(self, work: Callable[[Hashable, list[Any]], list[Any]], slots: threading.Semaphore,
                 timeout: float, window: float = WINDOW, max_rows: int = 32):  # fmt: skip
        self.work, self.slots, self.timeout, self.window, self.max_rows = work, slots, timeout, window, max_rows
        self.pending: dict[Hashable, list[tuple[Any, asyncio.Future]]] = {}
        self.scheduled: set[Hashable] = set()  # keys with a pass that has not yet taken its requests
        self.tasks: set[asyncio.Task] = set()
        self.running: dict[Hashable, asyncio.Lock] = {}  # one pass of a key at a time
        self.passes = 0  # batches run (the tests and the benchmark read them)
        self.rows = 0

    async def submit(self, key: Hashable, item: Any) -> Any:
        """The answer to ``item``, decoded with whatever compatible requests wait beside it."""
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda done: done.cancelled() or done.exception())  # read even if the client left
        self.pending.setdefault(key, []).append((item, future))
        self._schedule(key)
        try:
            with anyio.fail_after(self.timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            raise HTTPException(503, f"the server is busy: no answer within {self.timeout:g} s, try again") from None

    def _schedule(self, key: Hashable) -> None:
        if key not in self.scheduled and self.pending.get(key):
            self.scheduled.add(key)
            task = asyncio.get_running_loop().create_task(self._pass(key))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pass(self, key: Hashable) -> None:
        await asyncio.sleep(self.window)
        async with self.running.setdefault(key, asyncio.Lock()):
            await self._run(key)

    async def _run(self, key: Hashable) -> None:
        await anyio.to_thread.run_sync(self.slots.acquire)  # waiting here, more requests join the batch
        try:
            waiting = self.pending.pop(key, [])
            taken, rest = waiting[: self.max_rows], waiting[self.max_rows :]
            taken = [(item, future) for item, future in taken if not future.done()]  # a client that gave up
            self.scheduled.discard(key)
            if rest:
                self.pending[key] = rest
                self._schedule(key)
            if not taken:
                return
            self.passes, self.rows = self.passes + 1, self.rows + len(taken)
            try:
                answers = await anyio.to_thread.run_sync(self.work, key, [item for item, _ in taken])
            except TunesmithError as exc:
                answers = [exc] * len(taken)
            except Exception:
                log.exception("studio batch failed")
                answers = [HTTPException(500, "internal error (the server log has the details)")] * len(taken)
        finally:
            self.slots.release()
        for (_, future), answer in zip(taken, answers):
            if future.done():
                continue
            if isinstance(answer, Later):
                task = asyncio.get_running_loop().create_task(self._later(answer, future))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    async def _later(self, later: Later, future: asyncio.Future) -> None:
        """Finish a :class:`Later` answer in a thread job holding a generation slot."""

        def job():
            with self.slots:
                return later.function()

        try:
            answer = await anyio.to_thread.run_sync(job)
        except TunesmithError as exc:
            answer = exc
        except Exception:
            log.exception("studio request failed")
            answer = HTTPException(500, "internal error (the server log has the details)")
        if future.done():
            return
        if isinstance(answer, Exception):
            future.set_exception(answer)
        else:
            future.set_result(answer)
