"""``tunesmith serve``: the studio web app on this machine (127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from tunesmith.errors import TunesmithError


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", default=None, metavar="PATH",
                        help="checkpoint to offer (repeat for several; default: the shipped models/erk.pt); "
                             "the page picks among them by file name")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    # Two processes by default: each runs one shared decoding loop (continuous batching, on one
    # core: Python holds the GIL) for the clients it serves, so two use both cores of a 2-core
    # machine (measured under load in BENCHMARKS.md, "Studio": 18.0 against 12.5 requests/s); on
    # Linux, one process per core, each keeps to a core of its own (own_core).
    parser.add_argument("--processes", type=int, default=2,
                        help="server processes, each with its own copy of the models and its own decoding loop "
                             "(default 2: one per core of a 2-core machine)")
    parser.add_argument("--workers", type=int, default=2, help="generation jobs run at once in each process (default 2)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a request may take (default 30)")


def model_list(paths: list[str] | None) -> dict[str, Path]:
    """Name (file stem) → checkpoint path of every --model; each must be a file, names unique."""
    from tunesmith.generate.generator import default_model_path

    chosen = [Path(p) for p in paths] if paths else [default_model_path()]
    models: dict[str, Path] = {}
    for path in chosen:
        if not path.is_file():
            raise TunesmithError(f"no model at {str(path)!r}: train one or pass --model PATH")
        if path.stem in models:
            raise TunesmithError(f"two models are named {path.stem!r}: rename one of the files")
        models[path.stem] = path.resolve()
    return models


def run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from tunesmith.studio.app import create_app
    except ImportError as exc:
        raise TunesmithError(f"the studio needs the web extra ({exc.name}): pip install 'tunesmith[web]'") from None
    if not 1 <= args.port <= 65535:
        raise TunesmithError(f"--port must be in 1..65535, got {args.port!r}")
    if not 1 <= args.workers <= 16 or not 1 <= args.processes <= 16 or not 1 <= args.timeout <= 600:
        raise TunesmithError("--workers and --processes must be in 1..16 and --timeout in 1..600 seconds")
    models = model_list(args.model)
    check_address(args.host, args.port)
    one_thread()
    app = create_app(models, slots=args.workers, timeout=args.timeout, preload=True)  # bad models stop us here
    print(f"tunesmith studio on http://{args.host}:{args.port}/  (API docs: /docs; Ctrl+C stops)")
    if args.processes == 1:
        long_lived()
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return 0
    # Several processes: generation is Python-bound (the GIL), so processes, not threads, use the cores.
    del app  # each worker loads its own copy; the parent only watches them
    from tunesmith.studio import balance

    shared = tempfile.mkdtemp(prefix="tunesmith-serve-")  # the processes' core locks and load table
    balance.make_table(shared, args.processes)
    cores = shared if pinnable(args.processes) else ""
    os.environ[ENVIRONMENT] = json.dumps({"models": {name: str(path) for name, path in models.items()},
                                          "slots": args.workers, "timeout": args.timeout, "cores": cores,
                                          "shared": shared, "processes": args.processes})  # fmt: skip
    try:
        uvicorn.run("tunesmith.studio.command:app_from_environment", factory=True, workers=args.processes,
                    host=args.host, port=args.port, log_level="warning")  # fmt: skip
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return 0


def check_address(host: str, port: int) -> None:
    """A one-line TunesmithError when the server could not listen on ``host``:``port`` (a name
    that does not resolve, an address of another machine, a port in use), before any banner."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise TunesmithError(f"--host {host!r} is not an address or a name of this machine") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise TunesmithError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def one_thread() -> None:
    """One torch CPU thread per server process: its decoding loop shares the cores with the
    request threads and the event loop, where a second intra-op thread only spins."""
    import torch

    torch.set_num_threads(1)


def long_lived() -> None:
    """Move everything loaded so far (models, originality indexes, tables: they live as long as the
    server) out of the garbage collector's sight, so its full collections walk only what requests
    allocate. Measured under the load test (py-spy, GIL samples): collections took ~5% of a
    server process's Python time before, ~0.3% after."""
    import gc

    gc.collect()
    gc.freeze()


def pinnable(processes: int) -> bool:
    """Whether ``processes`` server processes each get a core of their own (:func:`own_core`): on
    Linux, with one process per core this server may use (the default two on two cores). With
    cores to spare the scheduler places the processes (another server may be running there too)."""
    return hasattr(os, "sched_setaffinity") and 2 <= processes == len(os.sched_getaffinity(0))


_HELD: list = []  # this process's core lock, held (open) until it exits


def own_core(folder: str | Path) -> int | None:
    """Keep this process (and the threads it starts) to one core that no sibling server process
    holds, and return it (None when every core is taken). Each core is a lock file in ``folder``
    (the parent's, one per ``serve``): a process takes the first it can lock, and a process that
    dies frees its core for the one started in its place.

    Why: a process's decoding loop, request threads and event loop take turns on the GIL; left
    free, the scheduler moves them between the cores and the two processes' caches mix. Each on a
    core of its own, a request costs about a seventh less CPU (BENCHMARKS.md, "Studio")."""
    import fcntl

    for core in sorted(os.sched_getaffinity(0)):
        handle = open(Path(folder) / f"core-{core}.lock", "w")  # held open for the process's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a sibling holds this core
            handle.close()
            continue
        _HELD.append(handle)
        os.sched_setaffinity(0, {core})
        return core
    return None


def balancer_from(settings: dict):
    """This worker's :class:`~tunesmith.studio.balance.Balancer` over the parent's shared folder,
    watching the event loop uvicorn loads the app in (None: no folder, no file locks, no loop)."""
    import asyncio

    from tunesmith.studio import balance

    if not settings.get("shared") or not balance.available():
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # built outside a server's loop (a test): nothing to balance
        return None
    balancer = balance.Balancer(settings["shared"], int(settings["processes"]))
    balancer.watch(loop)
    return balancer


ENVIRONMENT = "TUNESMITH_STUDIO_SETTINGS"  # how `serve` hands its settings to its worker processes


def app_from_environment():
    """The app of one worker process of ``tunesmith serve --processes N`` (settings from the parent)."""
    from tunesmith.studio.app import create_app

    one_thread()
    settings = json.loads(os.environ[ENVIRONMENT])
    if settings.get("cores") and hasattr(os, "sched_setaffinity"):
        own_core(settings["cores"])  # first: the threads this process starts keep to its core
    models = {name: Path(path) for name, path in settings["models"].items()}
    app = create_app(models, slots=int(settings["slots"]), timeout=float(settings["timeout"]), preload=True,
                     spread=True, balancer=balancer_from(settings))  # fmt: skip
    long_lived()
    return app
