"""The studio's decoding thread: continuous batching of every compose and regenerate request.

Each request is planned and finished in its own worker thread, as a CLI call would be, but its
decoding (``Generator.decode_plans``) is handed to :class:`SharedDecoder`: one thread running a
:class:`~tunesmith.generate.stream.RowStream` per sampling setting, which the plans join between
two steps and leave as soon as they are done. A request therefore waits about one step to start
and then takes its own steps, whatever else is running — no pass to wait for — while every
model step is one batched matrix product over all the rows in flight.

Each request still gets exactly what it gets alone (its own seeded stream; see
:mod:`tunesmith.generate.stream`). Plans the loop cannot take (beam search, a control with no
row-wise form) are decoded alone in the request's thread. If a step fails, every plan in that
stream gets the error and its request decodes again alone, so only the culprit fails.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from concurrent.futures import CancelledError, Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import torch
from fastapi import HTTPException

from tunesmith.errors import TunesmithError

log = logging.getLogger("tunesmith.studio")


class SharedDecoder:
    """A ``decode(plans, config) -> list[Decoded]`` for one generator whose plans share running loops."""

    def __init__(self, generator, timeout: float = 60.0, window: float = 0.0):
        self.generator, self.timeout, self.window = generator, timeout, window
        self.condition = threading.Condition()
        self.pending: list[tuple[tuple, Any, list[Future]]] = []  # (sampling key, prepared cohort, futures)
        self.streams: dict[tuple, Any] = {}
        self.thread: threading.Thread | None = None
        self.peak_rows = 0  # the most rows one step has carried (tests read it)
        self.alone = 0  # requests decoding alone right now (the loop was idle when they came)
        self.shortcut = True  # a request that finds the loop idle decodes alone, by the fastest loop for it
        self.closed = False
        atexit.register(self.close)  # never left inside torch while the interpreter shuts down

    def close(self, wait: float = 5.0) -> None:
        """Stop the loop: the plans still running are answered with an error (the server is stopping)."""
        with self.condition:
            self.closed = True
            thread = self.thread
            self.condition.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    def __call__(self, plans: list, config, ahead: list = ()) -> list:
        """The Decoded of each of ``plans``, then of each of ``ahead`` (plans worth decoding only
        beside others, such as a compose's first form retry) or None where it was skipped."""
        from tunesmith.generate.rows import row_wise

        if not plans and not ahead:
            return []
        if self.closed:
            raise HTTPException(503, "the server is shutting down")
        if config.scheme == "beam" or not all(row_wise(plan) for plan in [*plans, *ahead]):
            return self.generator.decode_plans(plans, config) + [None] * len(ahead)
        with self.condition:  # nothing else running: this request alone, by the fastest loop for it
            alone = self.shortcut and not self.pending and not self.alone and not any(s.busy for s in self.streams.values())
            self.alone += alone
        if alone:
            from tunesmith.generate.decode import LEAN_ROWS

            try:
                if 1 < len(plans) <= LEAN_ROWS and all(plan.num == 1 for plan in plans):  # a compose's candidates:
                    return self.generator.decode_plans(plans, config) + [None] * len(ahead)  # their steps shared
                return [self.generator.decode_plans([plan], config)[0] for plan in plans] + [None] * len(ahead)
            finally:
                with self.condition:
                    self.alone -= 1
        plans = [*plans, *ahead]
        from tunesmith.generate.rows import prepare

        key = (config.scheme, config.temperature, config.top_k, config.top_p, config.mixed_p)
        futures = [Future() for _ in plans]
        device = self.generator.device
        # controls and prefixes are prepared here, in the request's thread, beside the running loop
        cohort = prepare(self.generator.model, plans, [torch.Generator(device=device).manual_seed(p.seed) for p in plans],
                         [_answer(future) for future in futures], device)  # fmt: skip
        with self.condition:
            self.pending.append((key, cohort, futures))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="tunesmith-decoder", daemon=True)
                self.thread.start()
            self.condition.notify()
        try:
            return [future.result(timeout=self.timeout) for future in futures]
        except (FutureTimeout, CancelledError):
            for future in futures:
                future.cancel()
                entry = getattr(future, "entry", None)
                if entry is not None:
                    entry.cancelled = True  # the loop drops its rows at the next step
            # not a TunesmithError: the engine would decode the request again alone, adding to the load
            raise HTTPException(503, f"the server is busy: no answer within {self.timeout:g} s, try again") from None

    def _loop(self) -> None:
        """Admit waiting plans, step every busy stream, repeat; return when there is nothing to do."""
        torch.set_grad_enabled(False)  # this thread only decodes (thread-local: no graph, no per-step context)
        while True:
            with self.condition:
                if self.closed:
                    stopping = HTTPException(503, "the server is shutting down")
                    for stream in self.streams.values():
                        stream.fail(stopping)
                    for _, _, futures in self.pending:
                        for future in futures:
                            future.cancel()
                    self.pending, self.thread = [], None
                    return
                if not self.pending and not any(s.busy for s in self.streams.values()):
                    self.streams = {k: s for k, s in self.streams.items() if k == _DEFAULT}  # idle: keep one
                    self.condition.wait(timeout=1.0)
                    if not self.pending:
                        self.thread = None
                        return
                idle = not any(s.busy for s in self.streams.values())
            if idle and self.window:  # an idle loop waits a moment for the requests arriving together
                time.sleep(self.window)
            with self.condition:
                pending, self.pending = self.pending, []
            for key, cohort, futures in pending:
                self._admit(key, cohort, futures)
            for stream in list(self.streams.values()):
                if stream.busy:
                    self.peak_rows = max(self.peak_rows, stream.rows)
                    try:
                        stream.step()
                    except Exception as exc:  # every plan of this stream decodes again alone
                        stream.fail(_as_refusal(exc, "step"))

    def _admit(self, key: tuple, cohort, futures: list[Future]) -> None:
        from tunesmith.generate.decode import StepChooser
        from tunesmith.generate.stream import RowStream

        if not all(future.set_running_or_notify_cancel() for future in futures):
            return  # the request gave up (all its futures are cancelled together)
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = RowStream(self.generator.model, StepChooser(*key), self.generator.device)
        try:
            entries = stream.join(cohort)
        except Exception as exc:
            for future in futures:
                future.set_exception(_as_refusal(exc, "join"))
            return
        for entry, future in zip(entries, futures):
            future.entry = entry


_DEFAULT = ("sample", 1.0, 8, 0.9, 0.5)  # GenerationConfig's sampling defaults: the stream kept when idle


def _as_refusal(exc: Exception, what: str) -> TunesmithError:
    """``exc`` as the TunesmithError its requests see: they then decode again alone (the engine's
    fallback), so a fault of the shared loop costs time, not answers; an unexpected one is logged."""
    if isinstance(exc, TunesmithError):
        return exc
    log.exception("studio decoding loop: %s failed", what, exc_info=exc)
    return TunesmithError(f"the shared decoding loop failed ({type(exc).__name__}); decoded alone instead")


def _answer(future: Future):
    def done(result) -> None:
        try:
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        except InvalidStateError:  # the request gave up meanwhile
            pass

    return done
