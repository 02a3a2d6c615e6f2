"""The studio's ONE doorway into the generation engine: every call into ``tunesmith.generate``,
``tunesmith.harmony`` and the corpus reader goes through this module, so re-pointing the studio
at a new engine means editing this file only.

Composing is ``Generator.generate`` with the request's GenerationConfig (instrument, chords and
the copy guard included). Regenerating bars is ``regenerate_many`` (best-of-K candidates
rescored by the kept bars after the region, fixed notes held, the melody's form followed), once
per unlocked run of bars; regenerate requests that arrive together are decoded as one pass.
"""

from __future__ import annotations

import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.encoding import HOLD, decode_tokens, encode_notes, is_pitch
from tunesmith.errors import TunesmithError
from tunesmith.generate import GenerationConfig, Generator, Melody
from tunesmith.generate.regenerate import regenerate_many
from tunesmith.meter import bar_spans as meter_bar_spans
from tunesmith.meter import full_bar_starts
from tunesmith.song import Chord, Song, bar_steps, tonic_pitch_class

# Corpus-reader formats an uploaded file may have (the suffix decides how it is parsed).
OPEN_SUFFIXES = (".abc", ".krn", ".musicxml", ".xml", ".mxl", ".mid", ".midi")


@dataclass(frozen=True)
class Fix:
    """A note the musician set: the note starting at ``step`` has ``pitch`` (None = rest)."""

    step: int
    pitch: int | None


class Models:
    """The server-side list of models: name → checkpoint path, each loaded once on first use."""

    def __init__(self, paths: dict[str, Path]):
        if not paths:
            raise TunesmithError("the studio needs at least one model")
        self.paths = dict(paths)
        self._loaded: dict[str, Generator] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    def check(self, name: str | None) -> str:
        """The model's name (the first model's for None); an unknown name is a one-line error."""
        name = name or self.names[0]
        if name not in self.paths:
            raise TunesmithError(f"unknown model {name!r}; known: {', '.join(self.names)}")
        return name

    def get(self, name: str | None) -> Generator:
        name = self.check(name)
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = Generator.from_checkpoint(self.paths[name], device="cpu")
            return self._loaded[name]

    def warm(self, name: str) -> None:
        """Load the model and everything its first request would load (the originality index,
        the folded weights, the form tables) by composing two bars: a server's first musician then
        waits as long as every later one (about 0.3 s sooner), and a model that cannot compose
        stops the server before it starts."""
        generator = self.get(name)
        generator.originality()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the defaults where the model knows them (a model of jigs alone knows no 4/4)
            mode = "major" if "major" in generator.modes else generator.modes[-1]
            meter = "4/4" if "4/4" in generator.meters else generator.meters[-1]
            generator.generate(GenerationConfig(bars=2, seed=0, mode=mode, meter=meter))

    def describe(self, name: str) -> dict[str, Any]:
        generator = self.get(name)
        return {"name": name, "modes": generator.modes[1:], "meters": generator.meters[1:],
                "steps_per_quarter": generator.steps_per_quarter}  # fmt: skip


def compose(generator: Generator, name: str, settings: dict[str, Any],
            primer_file: Path | None = None) -> tuple[list[Melody], list[str]]:  # fmt: skip
    """New melodies and the warnings the engine gave (a primer pitch moved into the model's range…).

    ``settings`` are GenerationConfig fields; ``primer_file`` a server-side temporary file.
    """
    config = GenerationConfig(**settings, primer_file=str(primer_file) if primer_file else "")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        melodies = generator.generate(config)
    for melody in melodies:
        melody.params.update(model=name, primer_file="uploaded ABC" if primer_file else "")
    return melodies, list(dict.fromkeys(str(w.message) for w in caught))


def batch_key(settings: dict[str, Any]) -> tuple | None:
    """What compose requests must share to be decoded in one pass (None: the request runs alone)."""
    from tunesmith.generate.batch import batch_key as key_of

    try:
        return key_of(GenerationConfig(**settings))
    except TypeError:  # not GenerationConfig fields: compose() gives the error
        return None


def compose_batch(generator: Generator, name: str, requests: list[dict[str, Any]], decode=None) -> list[Any]:
    """``compose`` of each request's ``settings`` as one decoding pass where they share their sampling
    settings (each gets the melody it gets alone); a request's TunesmithError takes its place.
    ``decode``: the studio's shared decoding loop (:mod:`tunesmith.studio.decoder`)."""
    from tunesmith.generate.batch import generate_batch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        configs = [GenerationConfig(**settings) for settings in requests]
        results = generate_batch(generator, configs, return_errors=True, decode=decode)
    notes = list(dict.fromkeys(str(w.message) for w in caught))  # batched requests share their settings and so their warnings

    def answer(melodies: list[Melody]) -> tuple[list[Melody], list[str]]:
        for melody in melodies:
            melody.params.update(model=name, primer_file="")
        return melodies, notes

    answers: list[Any] = []
    for result in results:
        if isinstance(result, TunesmithError):
            answers.append(result)
        else:
            answers.append(answer(result))
    return answers


def bar_spans(song: Song) -> list[tuple[int, int, int]]:
    """``(number, start, end)`` of every bar holding music, in order: bar 0 is a pickup, full bars count from 1."""
    return [(number, start, end) for number, (start, end) in sorted(meter_bar_spans(song).items())]


def regions(song: Song, first: int, last: int, locked: set[int]) -> list[tuple[int, int]]:
    """Step ranges of bars ``first..last`` minus the locked bars, adjacent bars merged."""
    spans = {number: (a, b) for number, a, b in bar_spans(song)}
    if first not in spans or last not in spans or first > last:
        known = f"{min(spans)}..{max(spans)}"
        raise TunesmithError(f"bars {first}-{last} are not a range of this melody's bars ({known})")
    result: list[tuple[int, int]] = []
    for number in range(first, last + 1):
        if number in locked:
            continue
        a, b = spans[number]
        if result and result[-1][1] == a:
            result[-1] = (result[-1][0], b)
        else:
            result.append((a, b))
    if not result:
        raise TunesmithError(f"bars {first}-{last} are all locked: unlock one to regenerate")
    return result


def regenerate(generator: Generator, name: str, melody: Melody, bars: tuple[int, int], num: int, seed: int,
               config: dict[str, Any], locked: set[int] = frozenset(), fixes: list[Fix] = ()) -> list[Melody]:  # fmt: skip
    """``num`` alternatives of ``melody`` with bars ``bars[0]..bars[1]`` (minus ``locked``) new.

    Bars outside the region keep their notes. ``fixes`` inside a region stay as the musician
    set them. ``config`` holds sampling fields of GenerationConfig (scheme, temperature, top_k,
    top_p, scale, range…). A melody composed with a form keeps it: the new bars follow it.
    """
    result = regenerate_batch(generator, name, [Regeneration(melody, bars, num, seed, config, set(locked), list(fixes))])[0]
    if isinstance(result, TunesmithError):
        raise result
    return result


@dataclass
class Regeneration:
    """One regenerate request of the studio (see :func:`regenerate`)."""

    melody: Melody
    bars: tuple[int, int]
    num: int
    seed: int
    config: dict[str, Any]
    locked: set[int]
    fixes: list[Fix]


_DEADLINE = threading.local()  # the time.monotonic() by which this thread's request must be answered


@contextmanager
def deadline(at: float | None):
    """Within the block, :func:`out_of_time` tells this thread's work whether ``at`` has passed
    (the studio's time limit per request: work a client no longer waits for stops early)."""
    before = getattr(_DEADLINE, "at", None)
    _DEADLINE.at = at
    try:
        yield
    finally:
        _DEADLINE.at = before


def out_of_time() -> bool:
    """Whether this thread's request has passed its :func:`deadline`."""
    at = getattr(_DEADLINE, "at", None)
    return at is not None and time.monotonic() > at


def regenerate_batch(generator: Generator, name: str, requests: list[Regeneration], decode=None) -> list[Any]:
    """:func:`regenerate` of each request, in order, decoded together (each request gets exactly
    what it gets alone: its own seed); a request's TunesmithError takes its place. ``decode``:
    the studio's shared decoding loop (:mod:`tunesmith.studio.decoder`)."""
    answers: list[Any] = [None] * len(requests)
    live = []
    for index, request in enumerate(requests):
        try:
            _check_fixes(request.melody.tokens, request.fixes)
            live.append((index, request, _runs(generator, request)))
        except TunesmithError as exc:
            answers[index] = exc
    rows = {index: [request.melody] for index, request, _ in live}
    for stage in range(max((len(runs) for _, _, runs in live), default=0)):
        if out_of_time():  # the request was answered 503 meanwhile: its later runs are not worth decoding
            raise TunesmithError("the request ran out of time")
        tasks, owners = [], []
        for index, request, runs in live:
            if stage >= len(runs) or isinstance(answers[index], TunesmithError):
                continue
            run = runs[stage]
            fix = _fix_text(request.melody.song, run, request.fixes)
            sampling = {k: request.config[k] for k in SAMPLING if k in request.config}
            for row_index, row in enumerate(rows[index]):
                count = request.num if stage == 0 else 1
                tasks.append((row, (run[0], run[-1]), dict(num=count, candidates=CANDIDATES_PER_ALTERNATIVE * count, fix=fix,
                              horizon=HORIZON, join_bars=JOIN_BARS, seed=request.seed + 1000 * stage + row_index, **sampling)))  # fmt: skip
                owners.append(index)
        made: dict[int, list[Melody]] = {}
        for index, result in zip(owners, regenerate_many(generator, tasks, return_errors=True, decode=decode)):
            if isinstance(result, TunesmithError):  # the engine speaks in CLI options; the API in fields
                answers[index] = TunesmithError(str(result).replace("--fix ", "fixes: ").replace("--", ""))
            else:
                made.setdefault(index, []).extend(result)
        for index in made:
            rows[index] = made[index]
    for index, request, _ in live:
        if not isinstance(answers[index], TunesmithError):
            answers[index] = _finish(generator, name, request, rows[index])
    return answers


def _finish(generator: Generator, name: str, request: Regeneration, results: list[Melody]) -> list[Melody]:
    """The alternatives as the page shows them (kept notes held across a region's end are struck
    again there by the regeneration itself): the copy measured against the melody's own limit,
    the request recorded."""
    melody, bars, locked = request.melody, request.bars, request.locked
    copy = melody.params.get("copy")  # a client's JSON: checked before use
    limit = copy.get("max_copy") if isinstance(copy, dict) else None
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
    for index, result in enumerate(results):
        result.song.title = melody.song.title
        if isinstance(copy, dict):  # the new bars may share more with a training tune than the old ones
            _copy_again(generator, result, limit, result.params.get("copy"))
        result.params.update(index=index, model=name, studio={"bars": list(bars), "seed": request.seed,
                             "locked": sorted(locked), "fixes": [[f.step, f.pitch] for f in request.fixes]})  # fmt: skip
    return results


def _copy_again(generator: Generator, melody: Melody, limit: int | None, measured: Any) -> None:
    """``melody.params["copy"]`` against ``limit``: ``measured`` (the regeneration's own
    description of these very notes) with the limit applied, else measured anew."""
    if not isinstance(measured, dict) or not isinstance(measured.get("notes"), int):
        describe_copy(generator, melody, limit)
        return
    melody.params["copy"] = {k: v for k, v in measured.items() if k not in ("max_copy", "exceeds")}
    if limit is not None:
        melody.params["copy"].update(max_copy=limit, exceeds=measured["notes"] > limit)


# Candidates sampled per alternative asked for, the kept bars after the region that rank them,
# and the bars at the region's end where an alternative's candidates differ (each alternative is
# written once up to its last bar, which its 4 candidates write anew; the one the kept bar after
# fits best is kept). Chosen with benchmarks/bench_regenerate.py --alternatives 4 --candidates 16
# (60 held-out 4-bar regions, seed 0, every kept bar after the region scored; original −41.78
# nats, join 2.29 semitones, 0% of joins over a fifth):
#   all 16 write the whole region, horizon 2: −45.33 nats, join 2.53, 3.7% | naive (1 each): −48.47, 3.10, 5.4%
#   join bars 1, horizon 2: −46.64, 2.57, 3.3% | join bars 1, horizon 1: −46.77, 2.49, 3.1% | join bars 2: −46.49, 2.48, 3.5%
# Sharing the first bars keeps the joins as smooth (interval, leaps) at 46% of the row-steps
# (704 against 1,536 for a 4/4 region), though the whole suffix scores ~1.4 nats lower: under
# load (benchmarks/bench_studio.py) that is 16% more requests per second and a regenerate p95
# of 0.97 s against 1.32 s. A CLI `tunesmith regenerate` keeps every candidate whole (--join-bars 0).
CANDIDATES_PER_ALTERNATIVE = 4
HORIZON = 1
JOIN_BARS = 1


SAMPLING = ("scheme", "temperature", "top_k", "top_p", "mixed_p", "scale", "range")  # what a regenerate request may set


def _runs(generator: Generator, request: Regeneration) -> list[list[int]]:
    """The unlocked runs of bars of a request: ``num`` versions of the first are made, then one
    version of each later run for every alternative."""
    melody, bars, locked = request.melody, request.bars, request.locked
    runs: list[list[int]] = []
    for number in range(bars[0], bars[1] + 1):
        if number not in locked:
            if runs and runs[-1][-1] == number - 1:
                runs[-1].append(number)
            else:
                runs.append([number])
    regions(melody.song, bars[0], bars[1], locked)  # a bad range or all bars locked: the API's own words
    if melody.params.get("opened") and not melody.params.get("model_fingerprint"):
        melody.params["model_fingerprint"] = generator.fingerprint  # an opened tune: any model may go on with it
    return runs


def _fix_text(song: Song, run: list[int], fixes: list[Fix]) -> str:
    """Fixes inside bars ``run`` in the engine's words: "bar 6 beat 1 = 74; bar 7 beat 2.5 = rest"."""
    unit = song.steps_per_quarter * 4 / int(song.meter.split("/")[1])
    words = []
    for number, start, end in bar_spans(song):
        for fix in fixes:
            if number in run and start <= fix.step < end:
                pitch = "rest" if fix.pitch is None else fix.pitch
                words.append(f"bar {number} beat {(fix.step - start) / unit + 1:g} = {pitch}")
    return "; ".join(words)


def _check_fixes(tokens: list[str], fixes: list[Fix]) -> None:
    """Each fix must sit where a note or rest of the melody starts (the page fixes whole notes),
    one pitch per step. (Fixes outside the regenerated bars are the page's list of every fixed
    note: kept there anyway, they change nothing.)"""
    pitches: dict[int, int | None] = {}
    for fix in fixes:
        if fix.step >= len(tokens) or tokens[fix.step] == HOLD:
            raise TunesmithError(f"fixes: step {fix.step} is not where a note of this melody starts")
        if pitches.setdefault(fix.step, fix.pitch) != fix.pitch:
            raise TunesmithError(f"fixes: step {fix.step} is fixed to two different pitches")


def melody_of_tokens(tokens: list[str], like: Song, params: dict[str, Any]) -> Melody:
    """A Melody of output-key ``tokens`` with the meter, key, bar lines and chords of ``like``."""
    notes = decode_tokens(tokens)
    total = sum(n.steps for n in notes)
    bar = bar_steps(like.meter, like.steps_per_quarter)
    song = Song(notes=notes, steps_per_quarter=like.steps_per_quarter, meter=like.meter,
                bar_starts=full_bar_starts(like.bar_starts[:1] or [0], total, bar), mode=like.mode, key=like.key,
                transposition=like.transposition, title=like.title, source=like.source, chords=list(like.chords),
                phrase_starts=[s for s in like.phrase_starts if s < total], phrase_source=like.phrase_source)  # fmt: skip
    return Melody(list(tokens), song, params)


def open_tune(path: Path, steps_per_quarter: int) -> tuple[Melody, list[str]]:
    """The first tune of a corpus-format file as a Melody in its own key (to continue work on it),
    and what the reader had to say of it (a tune that changes meter is read in its first)."""
    from tunesmith.generate.primer import TunesmithWarning, primer_tokens_of_song, read_primer_file
    from tunesmith.song import key_name

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        song = read_primer_file(path, steps_per_quarter)  # in C major / A minor
    notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, TunesmithWarning)))
    shift = -song.transposition
    tokens = [str(int(t) + shift) if is_pitch(t) else t for t in primer_tokens_of_song(song)]
    tokens = encode_notes(decode_tokens(tokens))
    if not tokens:
        raise TunesmithError("the file holds no notes")
    key = key_name(tonic_pitch_class(song.key), song.mode) if song.key else "C"
    like = Song(notes=[], steps_per_quarter=song.steps_per_quarter, meter=song.meter, bar_starts=song.bar_starts,
                mode=song.mode, key=key, transposition=song.transposition, title=song.title or "Opened tune",
                source="opened file")  # fmt: skip
    params = {"key": key, "mode": song.mode, "meter": song.meter, "opened": True}
    return melody_of_tokens(tokens, like, params), notes


def describe_copy(generator: Generator, melody: Melody, max_copy: int | None) -> None:
    """Set ``melody.params["copy"]``: its longest stretch shared with the model's training tunes
    and the nearest tune (where the checkpoint carries an originality index)."""
    from tunesmith.generate.copyguard import describe_copy as described

    index = generator.originality()
    if index is not None:
        melody.params["copy"] = described(index[0], melody.song, max_copy)


def harmonize(melody: Melody, span: str = "auto") -> Melody:
    """The melody with chord symbols by the shipped harmoniser, one per bar or half bar (``span``)."""
    from tunesmith.harmony import harmonize_with_shipped

    melody.song.chords = harmonize_with_shipped(melody.song, span)
    melody.params["chord_span"] = span
    return melody


def with_chords(melody: Melody, chords: list[dict[str, Any]]) -> Melody:
    """``melody`` carrying the client's chord symbols."""
    melody.song.chords = [Chord(**c) for c in chords]
    return melody
