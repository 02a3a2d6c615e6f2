"""The studio's FastAPI app: one page (``static/``) and the JSON API it calls.

The server is stateless: the page keeps every version of the melody (as ``Melody.to_dict``
JSON) and sends the one it works on with each request. Models come from a server-side list by
name; no path from a client is ever opened. Work runs in threads, at most ``slots`` at once,
each request under a timeout; request bodies and uploads are size-limited. Composing and
regenerating run in threads of their own whose decoding joins one shared loop per model
(continuous batching, :mod:`tunesmith.studio.decoder`).
"""

from __future__ import annotations

import json
import logging
import random
import re
import tempfile
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunesmith import __version__
from tunesmith.errors import TunesmithError
from tunesmith.generate.melody import Melody
from tunesmith.song import Song, bar_steps, tonic_pitch_class
from tunesmith.studio import engine, render
from tunesmith.studio.decoder import SharedDecoder
from tunesmith.studio.schemas import (CHORD_SPANS, MAX_BARS, MAX_NUM, MAX_STEPS, MAX_TEXT, ComposeRequest,
                                      ExportRequest, HarmonizeRequest, MelodyIn, MelodyRequest,
                                      RegenerateRequest)  # fmt: skip

STATIC = Path(__file__).parent / "static"
SWAGGER = STATIC / "vendor" / "swagger-ui"  # git-ignored; the Makefile copies it from npm's swagger-ui-dist
MAX_UPLOAD = 1024 * 1024  # bytes of an uploaded file
MAX_BODY = MAX_UPLOAD + 64 * 1024  # bytes of any request body (the upload plus its form fields)
log = logging.getLogger("tunesmith.studio")


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes gets a 413 before (or while) it is read."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            response = JSONResponse({"error": f"request body over {self.limit} bytes"}, status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        return await self.app(scope, limited, send)


class CloseAfterGeneration:
    """ASGI middleware for a server of several processes: the answer to a compose or regenerate
    request closes its connection, so the client's next request is accepted afresh by whichever
    process is free first (a kept-alive connection stays with one process however busy it is;
    under load the processes' shares then drift apart). With a ``balancer``
    (:class:`tunesmith.studio.balance.Balancer`) these requests are counted in flight, so the
    process with the fewest accepts the next one."""

    PATHS = ("/api/compose", "/api/regenerate")

    def __init__(self, app, balancer=None):
        self.app, self.balancer = app, balancer

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") not in self.PATHS:
            return await self.app(scope, receive, send)

        async def closing(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        balancer = self.balancer
        if balancer is None:
            return await self.app(scope, receive, closing)
        balancer.enter()
        try:
            return await self.app(scope, receive, closing)
        finally:
            balancer.leave()


class Runner:
    """Runs blocking work in a thread: ``slots`` at a time, each request answered within ``timeout``."""

    def __init__(self, slots: int, timeout: float):
        self.slots, self.timeout = threading.BoundedSemaphore(slots), timeout

    async def __call__(self, function, *args):
        deadline = time.monotonic() + self.timeout

        def work():
            if not self.slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise TimeoutError
            try:  # the slot is held until the work really ends, even after the request gave up
                with engine.deadline(deadline):  # long work checks it between its stages
                    return function(*args)
            finally:
                self.slots.release()

        try:
            with anyio.fail_after(self.timeout):
                return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except TimeoutError:
            raise HTTPException(503, f"no answer within {self.timeout:g} s: the server is busy or the request too "
                                     "large; try again, or ask for fewer bars or alternatives") from None
        except (TunesmithError, HTTPException):
            raise
        except Exception:
            log.exception("studio work failed")
            raise HTTPException(500, "internal error (the server log has the details)") from None


def to_melody(data: MelodyIn) -> Melody:
    """A checked Melody from a request's melody (its notes rebuilt from its tokens)."""
    song = data.song
    try:
        tonic_pitch_class(song.key)
        bar_steps(song.meter, song.steps_per_quarter)
    except (ValueError, ZeroDivisionError):
        raise TunesmithError(f"melody.song: key {song.key!r} or meter {song.meter!r} is not usable") from None
    like = Song(notes=[], steps_per_quarter=song.steps_per_quarter, meter=song.meter, bar_starts=song.bar_starts,
                mode=song.mode, key=song.key, transposition=song.transposition, title=song.title, source=song.source,
                phrase_starts=list(song.phrase_starts), phrase_source=song.phrase_source)  # fmt: skip
    params = {k: v for k, v in data.params.items() if k != "export"}
    melody = engine.melody_of_tokens(list(data.tokens), like, params)
    return engine.with_chords(melody, [c.model_dump() for c in song.chords])


def _field_errors(exc: ValidationError | RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            errors.append({"field": "body", "message": "malformed JSON"})
            continue
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        errors.append({"field": ".".join(loc) or "body", "message": str(error.get("msg", "invalid"))[:200]})
    return errors


STREAMED = 64  # compose/regenerate requests in flight at once (their threads mostly wait on the shared loop)


def create_app(models: dict[str, Path], slots: int = 2, timeout: float = 30.0, preload: bool = False,
               batch_window: float = 0.0, spread: bool = False, balancer=None) -> FastAPI:  # fmt: skip
    """The studio app over ``models`` (name → checkpoint); ``slots`` parallel jobs, ``timeout`` seconds each.

    ``preload`` loads and warms every model now (:meth:`engine.Models.warm`), so a bad
    checkpoint stops the server before it starts and the first request is as quick as the rest.
    Compose and regenerate requests decode in one shared loop per model, joining it between any
    two steps (``batch_window``: seconds an idle loop waits for more requests before it starts).
    ``spread``: one of several server processes (:class:`CloseAfterGeneration`), balanced by
    ``balancer`` (:class:`tunesmith.studio.balance.Balancer`) when given.
    """
    registry = engine.Models(models)
    if preload:
        for name in registry.names:
            registry.warm(name)
    run = Runner(slots, timeout)
    streamed = Runner(STREAMED, timeout)
    decoders: dict[str, SharedDecoder] = {}
    decoders_lock = threading.Lock()

    def decoder(name: str) -> SharedDecoder:
        with decoders_lock:
            if name not in decoders:
                decoders[name] = SharedDecoder(registry.get(name), timeout=timeout, window=batch_window)
            return decoders[name]

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        with decoders_lock:
            stopping = list(decoders.values())
        for shared_loop in stopping:  # their threads stop before the interpreter does
            await anyio.to_thread.run_sync(shared_loop.close)

    app = FastAPI(title="tunesmith studio", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Compose, regenerate bars, harmonise and export folk melodies.")  # fmt: skip
    app.state.decoders, app.state.models = decoders, registry
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    if spread:
        app.add_middleware(CloseAfterGeneration, balancer=balancer)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = _field_errors(exc)
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return JSONResponse({"error": f"{first['field']}: {first['message']}", "fields": errors}, status_code=422)

    @app.exception_handler(TunesmithError)
    async def refused(request: Request, exc: TunesmithError):
        return JSONResponse({"error": api_words(str(exc).splitlines()[0][:500])}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.error("studio request failed: %s", type(exc).__name__)
        return JSONResponse({"error": "internal error (the server log has the details)"}, status_code=500)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        """FastAPI's OpenAPI page from local Swagger UI files (``make install`` fetches them from npm),
        or, without them, the same endpoints as a plain page: nothing is loaded from a CDN."""
        if (SWAGGER / "swagger-ui-bundle.js").is_file():
            from fastapi.openapi.docs import get_swagger_ui_html

            return get_swagger_ui_html(openapi_url="/openapi.json", title="tunesmith studio API",
                                       swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
                                       swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
                                       swagger_favicon_url="/static/favicon.svg",
                                       swagger_ui_parameters={"validatorUrl": None})  # fmt: skip
        return HTMLResponse(api_page(app.openapi()))

    @app.get("/api/info", summary="Models, instruments, download formats and limits")
    async def info() -> dict[str, Any]:
        from tunesmith.instruments import INSTRUMENTS

        described = await run(lambda: [registry.describe(name) for name in registry.names])
        instruments = [{"name": i.name, "program": i.program, "bpm": i.bpm, "low": i.low, "high": i.high}
                       for i in INSTRUMENTS.values()]  # fmt: skip
        return {"version": __version__, "models": described, "formats": render.available_formats(),
                "instruments": instruments, "chord_spans": list(CHORD_SPANS),
                "limits": {"num": MAX_NUM, "bars": MAX_BARS, "steps": MAX_STEPS, "upload_bytes": MAX_UPLOAD}}  # fmt: skip

    @app.post("/api/compose", summary="Compose new melodies")
    async def compose(request: ComposeRequest) -> dict[str, Any]:
        settings = request.settings()
        key = None if request.primer_abc else engine.batch_key(settings)
        if key is not None:  # one melody: decoded in the shared loop, beside whatever else runs
            name = registry.check(request.model)

            def shared():  # the answer's JSON data too is built here, off the event loop
                answer = engine.compose_batch(registry.get(name), name, [settings], decode=decoder(name))[0]
                if isinstance(answer, Exception):
                    raise answer
                melodies, notes = answer
                return {"melodies": [m.to_dict() for m in melodies], "warnings": notes}

            return await streamed(shared)

        def work():
            generator = registry.get(request.model)
            name = request.model or registry.names[0]
            if not request.primer_abc:
                return engine.compose(generator, name, request.settings())
            with tempfile.TemporaryDirectory(prefix="tunesmith-studio-") as folder:
                path = Path(folder) / "primer.abc"
                text = request.primer_abc if "X:" in request.primer_abc else "X:1\n" + request.primer_abc
                path.write_text(text, encoding="utf-8")
                with _quiet_path(path, "primer_abc"):
                    return engine.compose(generator, name, request.settings(), path)

        melodies, notes = await run(work)
        return {"melodies": [m.to_dict() for m in melodies], "warnings": notes}

    @app.post("/api/regenerate", summary="Regenerate a range of bars: N alternatives")
    async def regenerate(request: RegenerateRequest) -> dict[str, Any]:
        melody = to_melody(request.melody)
        seed = request.seed if request.seed is not None else random.SystemRandom().randrange(2**31)
        fixes = [engine.Fix(f.step, f.pitch) for f in request.fixes]
        name = registry.check(request.model)  # an unknown model: the one-line error now, not inside a batch
        job = engine.Regeneration(melody, request.bars, request.num, seed, request.settings(), set(request.locked), fixes)
        def shared():  # decoded in the shared loop beside whatever else runs (it gets what it gets alone)
            answer = engine.regenerate_batch(registry.get(name), name, [job], decode=decoder(name))[0]
            if isinstance(answer, Exception):
                raise answer
            return {"alternatives": [m.to_dict() for m in answer], "seed": seed}

        return await streamed(shared)

    @app.post("/api/score", summary="The engraved score (SVG) with its bar and note map")
    async def score(request: MelodyRequest) -> dict[str, Any]:
        melody = to_melody(request.melody)
        return await run(render.score_view, melody)

    @app.post("/api/harmonize", summary="Add chord symbols to a melody (the shipped harmoniser)")
    async def harmonize(request: HarmonizeRequest) -> dict[str, Any]:
        melody = to_melody(request.melody)
        done = await run(engine.harmonize, melody, request.chord_span)
        return {"melody": done.to_dict()}

    @app.post("/api/export", summary="Download the melody as MIDI, MusicXML, ABC, WAV (humanized), JSON or SVG")
    async def export(request: ExportRequest) -> Response:
        melody = to_melody(request.melody)
        if request.format not in render.available_formats():
            available = ", ".join(render.available_formats())
            raise HTTPException(501, f"format {request.format!r} is not available on this server; available: {available}")
        data = await run(render.export_bytes, melody, request.format, request.bpm, request.program, request.humanize)
        name = render.filename_of(melody, request.format)
        return Response(data, media_type=render.MEDIA_TYPES[request.format],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip

    @app.post("/api/open", summary="Open a melody JSON or a tune file (ABC, kern, MusicXML, MIDI; 1 MB at most)")
    async def open_file(file: UploadFile = File(...)) -> dict[str, Any]:
        data = await file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise HTTPException(413, f"file: over {MAX_UPLOAD} bytes")
        suffix = Path(file.filename or "").suffix.lower()
        if suffix == ".json":
            return {"melody": _open_json(data).to_dict(), "warnings": []}
        if suffix not in engine.OPEN_SUFFIXES:
            raise HTTPException(415, f"file: {suffix or 'no suffix'} is not .json or {', '.join(engine.OPEN_SUFFIXES)}")

        def work():
            with tempfile.TemporaryDirectory(prefix="tunesmith-upload-") as folder:
                path = Path(folder) / f"upload{suffix}"  # never the client's name
                path.write_bytes(data)
                with _quiet_path(path, "file"):
                    opened, notes = engine.open_tune(path, registry.get(None).steps_per_quarter)
            if len(opened.tokens) > MAX_STEPS:  # what every other call would refuse
                raise TunesmithError(f"file: the tune lasts {len(opened.tokens)} steps; the studio takes melodies of "
                                     f"at most {MAX_STEPS} steps (128 bars of 4/2 in 16ths)")  # fmt: skip
            opened.song.title = opened.song.title[:MAX_TEXT]
            return opened, notes

        melody, notes = await run(work)
        return {"melody": melody.to_dict(), "warnings": notes}

    return app


def api_words(message: str) -> str:
    """An engine message in the API's words: its CLI flags (``--max-copy``, ``--primer-file``)
    as the request fields that set them (``max_copy``, ``primer_abc``)."""
    message = message.replace("--primer-file", "primer_abc")
    return re.sub(r"(?<![\w-])--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), message)


@contextmanager
def _quiet_path(path: Path, field: str):
    """Errors about a server-side temporary file name the request field instead of the path."""
    try:
        yield
    except TunesmithError as exc:
        message = str(exc).replace(f"cannot use primer file {str(path)!r}: ", "")  # the field says which file
        message = message.replace(repr(str(path)), field).replace(str(path), field)
        raise TunesmithError(message if message.startswith(field) else f"{field}: {message}") from None


def _open_json(data: bytes) -> Melody:
    try:
        parsed = json.loads(data.decode("utf-8-sig"))  # a byte-order mark some editors write is no error
    except (UnicodeDecodeError, ValueError):
        raise TunesmithError("file: not a JSON text") from None
    except RecursionError:  # arrays nested thousands deep
        raise TunesmithError("file: its JSON is nested too deeply for a melody") from None
    try:
        return to_melody(MelodyIn.model_validate(parsed))
    except ValidationError as exc:
        first = _field_errors(exc)[0]
        raise TunesmithError(f"file: not a tunesmith melody ({first['field']}: {first['message']})") from None


def api_page(spec: dict[str, Any]) -> str:
    """The OpenAPI document as a plain HTML page: each endpoint, its summary and its body fields."""
    from html import escape

    schemas = spec.get("components", {}).get("schemas", {})
    rows = []
    for path, methods in spec.get("paths", {}).items():
        for method, operation in methods.items():
            body = operation.get("requestBody", {}).get("content", {})
            ref = next(iter(body.values()), {}).get("schema", {}).get("$ref", "")
            fields = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}) if ref else {}
            names = ", ".join(f"<code>{escape(n)}</code>" for n in fields) or "—"
            rows.append(f"<tr><td><b>{method.upper()}</b> <code>{escape(path)}</code></td>"
                        f"<td>{escape(operation.get('summary', ''))}</td><td>{names}</td></tr>")
    return ("<!doctype html><meta charset=utf-8><title>tunesmith studio API</title>"
            "<link rel=stylesheet href=/static/studio.css><body style='padding:24px'>"
            "<h1>tunesmith studio API</h1><p>Machine-readable: <a href=/openapi.json>/openapi.json</a>. "
            "Run <code>make install</code> with npm present for the interactive page.</p>"
            "<table class=panel><tr><th>endpoint</th><th>what</th><th>body fields</th></tr>"
            + "".join(rows) + "</table></body>")  # fmt: skip
