"""``tunesmith serve``: the studio web app on this machine (127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesmith.errors import TunesmithError


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", default=None, metavar="PATH",
                        help="checkpoint to offer (repeat for several; default: the shipped models/erk.pt); "
                             "the page picks among them by file name")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--workers", type=int, default=2, help="generation jobs run at once (default 2)")
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
    if not 1 <= args.workers <= 16 or not 1 <= args.timeout <= 600:
        raise TunesmithError("--workers must be in 1..16 and --timeout in 1..600 seconds")
    app = create_app(model_list(args.model), slots=args.workers, timeout=args.timeout, preload=True)
    print(f"tunesmith studio on http://{args.host}:{args.port}/  (API docs: /docs; Ctrl+C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
