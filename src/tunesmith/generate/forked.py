"""A request's few candidates decoded on the machine's cores at once.

A default ``tunesmith generate`` composes its melody twice (two candidates, the critic keeps the
more song-like) and the lean loop decodes them as one batch of two rows on one core: a step of
two rows costs about 1.3 steps of one, and the machine's other core idles. Here the process forks
once per extra core, each copy decodes its share of the candidates alone, and the answers come
back through a pipe as plain numbers — so the request takes about what one candidate takes.

The melodies are the very same: each plan draws only from its own stream seeded with its seed,
and a row gives the same logits alone as in any batch (:func:`tunesmith.model.addmm_rows`), which
``tests/test_generate_batch.py`` checks against the shared loop. Forking is used only where it is
safe and pays: on Linux, on the CPU, in a process running no other Python thread (a server's
worker threads could hold locks the copy would wait on forever), with at least two cores this
process may use and a melody long enough (:data:`FORK_STEPS`) to pay the fork (a few ms). A copy
that fails or does not answer in time is stopped and its plans are decoded here instead, so a
fork can cost time but never an answer.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import threading
import time
from typing import Callable

FORK_STEPS = 192  # steps of the longest plan from which a fork pays (a fork costs ~15 ms: 8 bars of 4/4 73 -> 77 ms, 16 bars 166 -> 137)
ENABLED = True  # tests switch it off to compare with the shared loop
WAIT = 30.0  # seconds a copy may take beyond 10x this process's own share


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def can_fork(plans: list, device) -> bool:
    """Whether :func:`decode_forked` should decode ``plans`` (see the module docstring)."""
    return (ENABLED and sys.platform.startswith("linux") and hasattr(os, "fork") and device.type == "cpu"
            and len(plans) >= 2 and threading.active_count() == 1 and usable_cores() >= 2
            and max(p.total_steps - len(p.prefix) for p in plans) >= FORK_STEPS)  # fmt: skip


def decode_forked(decode_one: Callable, plans: list) -> list:
    """``[decode_one(plan) for plan in plans]`` (each a :class:`~tunesmith.generate.decode.Decoded`),
    the plans shared out over this process and forked copies of it, one per usable core."""
    from tunesmith.generate.decode import Decoded

    workers = min(len(plans), usable_cores())
    shares = [list(range(w, len(plans), workers)) for w in range(workers)]  # plan indices per worker
    children = []  # (pid, read end, its share)
    reaped: set[int] = set()
    mine = list(shares[0])  # plan indices decoded in this process
    # what exists now is out of the collectors' sight meanwhile: a collection in a copy would
    # otherwise write to every object's header and copy the pages they share (and it costs here)
    froze = gc.get_freeze_count() == 0  # (never thaw what a caller froze)
    if froze:
        gc.freeze()
    try:
        for share in shares[1:]:
            try:
                read, write = os.pipe()
            except OSError:  # no file descriptors left: this process decodes the share
                mine += share
                continue
            try:
                pid = os.fork()
            except OSError:  # no memory or process slots for a copy: likewise
                os.close(read)
                os.close(write)
                mine += share
                continue
            if pid == 0:  # the copy: decode its share, write the numbers, leave without cleanup
                _child(write, read, [plans[i] for i in share], decode_one)
            os.close(write)
            children.append((pid, read, share))
        results: list = [None] * len(plans)
        started = time.monotonic()
        for i in mine:
            results[i] = decode_one(plans[i])
        patience = WAIT + 10 * (time.monotonic() - started)
        for pid, read, share in children:
            answer = _collect(read, time.monotonic() + patience)
            if answer is not None and len(answer) == len(share):
                for i, (ids, scored) in zip(share, answer):
                    results[i] = Decoded(ids, scored)
            else:  # the copy failed or is too slow: decoded here instead
                _stop(pid)
                reaped.add(pid)
                for i in share:
                    results[i] = decode_one(plans[i])
        return results
    finally:
        if froze:
            gc.unfreeze()
        for pid, read, _ in children:
            if pid not in reaped:  # (a reaped id may belong to another process by now)
                _stop(pid)
            os.close(read)


def _child(write: int, read: int, plans: list, decode_one: Callable) -> None:
    """The forked copy's whole life: it never returns into the caller's code."""
    code = 1
    try:
        os.close(read)
        import torch

        torch.set_num_threads(1)  # one core each: the parent keeps the other
        payload = json.dumps([[d.ids, d.scored] for d in (decode_one(plan) for plan in plans)]).encode()
        view = memoryview(payload)
        while view:
            view = view[os.write(write, view) :]
        code = 0
    except BaseException:  # noqa: BLE001 - any failure: the parent decodes these plans itself
        pass
    finally:
        os._exit(code)


def _collect(read: int, deadline: float) -> list | None:
    """The numbers a copy wrote before closing its end, or None (no valid answer by ``deadline``)."""
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read], [], [], left)[0]:
            return None
        chunk = os.read(read, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError:
        return None
    return answer if isinstance(answer, list) else None


def _stop(pid: int) -> None:
    """End a copy (if it still runs) and reap it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
