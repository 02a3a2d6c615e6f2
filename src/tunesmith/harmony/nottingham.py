"""Reading the Nottingham Music Database (ABC with chord symbols) into plain training records.

music21 parses each tune (quoted chords become ``harmony.ChordSymbol``); what the harmoniser
needs is kept as plain JSON: keys, meters, bar lines, melody notes and chord figures with their
offsets in quarters. Parsing is slow (~0.2 s a tune), so tunes are parsed in worker processes
and each file's records are cached under ``$TUNESMITH_CACHE/harmony/`` keyed by its content.
Repeats are not written out: a repeat only duplicates bars already seen, it adds no evidence
about which chord goes with which melody.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tunesmith.errors import TunesmithError

PARSE_VERSION = 2  # bump when the record format changes, to invalidate caches
DATA_FOLDER = Path("..") / "shared" / "data" / "nottingham-abc"
_MODE_FAMILY = {"major": "major", "ionian": "major", "lydian": "major", "mixolydian": "major",
                "minor": "minor", "aeolian": "minor", "dorian": "minor", "phrygian": "minor", "locrian": "minor"}


def default_folder() -> Path:
    """``../shared/data/nottingham-abc`` beside the project root (it may be absent)."""
    import tunesmith

    return Path(tunesmith.__file__).resolve().parents[2] / DATA_FOLDER


def cache_folder(cache_dir: str = "") -> Path:
    root = cache_dir or os.environ.get("TUNESMITH_CACHE") or str(Path.home() / ".cache" / "tunesmith")
    return Path(root).expanduser() / "harmony"


def tune_record(text: str, label: str) -> dict[str, Any] | None:
    """One ABC tune → ``{"title", "label", "keys", "meters", "bars", "notes", "chords"}`` or None.

    Offsets and lengths are in quarter notes; ``keys`` holds ``[offset, tonic_pc, mode]``,
    ``bars`` ``[offset, length]`` of each measure, ``notes`` ``[offset, length, midi]`` (rests
    left out), ``chords`` ``[offset, figure]`` as written. None when music21 cannot read it.
    """
    from music21 import converter, harmony, key, meter, note, stream

    try:
        parsed = converter.parseData(text, format="abc")
    except Exception:  # music21 raises many types for malformed ABC
        return None
    if isinstance(parsed, stream.Opus):
        if not parsed.scores:
            return None
        parsed = parsed.scores[0]
    part = parsed.parts[0] if getattr(parsed, "parts", None) else parsed
    keys, meters, notes, chords = [], [], [], []
    for element in part.flatten():
        offset = float(element.offset)
        if isinstance(element, harmony.ChordSymbol):
            chords.append([offset, element.figure])
        elif isinstance(element, key.Key):
            keys.append([offset, element.tonic.pitchClass, _MODE_FAMILY.get(element.mode, "major")])
        elif isinstance(element, key.KeySignature):
            keys.append([offset, element.asKey("major").tonic.pitchClass, "major"])
        elif isinstance(element, meter.TimeSignature):
            meters.append([offset, element.ratioString])
        elif isinstance(element, note.Note) and not element.duration.isGrace:
            notes.append([offset, float(element.quarterLength), element.pitch.midi])
    bars = [[float(m.offset), float(m.duration.quarterLength)] for m in part.getElementsByClass(stream.Measure)]
    if not notes or not chords or not keys:
        return None
    title = (parsed.metadata.title if parsed.metadata is not None else "") or label
    return {"title": str(title).strip(), "label": label, "keys": keys, "meters": meters or [[0.0, "4/4"]],
            "bars": bars, "notes": notes, "chords": chords}  # fmt: skip


def _read_jobs(jobs: list[tuple[str, str]]) -> list[dict[str, Any] | None]:
    return [tune_record(text, label) for text, label in jobs]


def read_folder(folder: str | Path | None = None, workers: int = 2, cache_dir: str = "",
                progress: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Every readable tune of the ``*.abc`` files in ``folder`` (default: the shared data folder).

    Raises TunesmithError when the folder is missing or holds no ABC file.
    """
    from tunesmith.corpus.reader import make_jobs
    from tunesmith.corpus.sources import SourceFile

    folder = Path(folder) if folder is not None else default_folder()
    files = sorted(folder.glob("*.abc")) if folder.is_dir() else []
    if not files:
        where = "the shared data folder is absent" if folder == default_folder() else "give a folder of .abc files"
        raise TunesmithError(f"no Nottingham ABC files in {str(folder)!r} ({where})")
    cache = cache_folder(cache_dir)
    records: list[dict[str, Any]] = []
    todo: dict[Path, list[tuple[str, str]]] = {}
    for path in files:
        digest = hashlib.sha256(f"{PARSE_VERSION}:".encode() + path.read_bytes()).hexdigest()[:24]
        cached = cache / f"{path.stem}-{digest}.json"
        if cached.is_file():
            records += json.loads(cached.read_text(encoding="utf-8"))
            continue
        jobs = [(job.text, f"{path.name}#{job.label.rsplit('#', 1)[-1]}") for job in make_jobs(SourceFile(path, path.name))
                if job.text is not None]  # fmt: skip
        todo[cached] = jobs
    if todo:
        chunks = [(target, jobs[i : i + 20]) for target, jobs in todo.items() for i in range(0, len(jobs), 20)]
        results: dict[Path, list[dict[str, Any]]] = {target: [] for target in todo}
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            for (target, _), chunk_records in zip(chunks, pool.map(_read_jobs, [jobs for _, jobs in chunks]), strict=True):
                results[target] += [r for r in chunk_records if r is not None]
                if progress:
                    print(f"  parsed {sum(len(v) for v in results.values())} tunes", end="\r", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        for target, found in results.items():
            target.write_text(json.dumps(found), encoding="utf-8")
            records += found
    return sorted(records, key=lambda r: r["label"])
