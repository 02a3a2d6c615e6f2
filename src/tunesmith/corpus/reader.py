"""Reading one tune with music21 into a :class:`Song` (or a reason to reject it).

Work is cut into jobs: one per file, or one per tune of an ABC file (so a 700-tune file is
parsed by all cores). Each job is a plain picklable value, run in a worker process.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from tunesmith.corpus import phrasing
from tunesmith.corpus.sources import FORMATS, SourceFile
from tunesmith.form.phrases import clean_phrase_starts, offsets_to_steps, rule_phrase_starts
from tunesmith.song import Note, Song, bar_steps, one_line, transposition_to

READER_VERSION = 4  # bump when reading changes, to invalidate caches
_TUNE_START = re.compile(r"^X:", re.MULTILINE)
# Modes music21 may report, folded to the major/minor the model knows (by the quality of the third).
_MODE_FAMILY = {"major": "major", "ionian": "major", "lydian": "major", "mixolydian": "major",
                "minor": "minor", "aeolian": "minor", "dorian": "minor", "phrygian": "minor", "locrian": "minor"}


@dataclass(frozen=True)
class Job:
    """One unit of parsing: ``text`` for text formats (an ABC tune with its file header), else None."""

    label: str
    path: str
    fmt: str
    text: str | None
    digest: str  # content hash, the cache key together with the reading settings
    problem: tuple[str, str] | None = None  # (reason, detail) when the file cannot be read at all


def make_jobs(source: SourceFile) -> list[Job]:
    """Jobs of one file; a file that cannot be read at all gives one job carrying the problem."""
    path, label = source.path, source.label
    fmt = FORMATS.get(path.suffix.lower())
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if fmt is None:
        return [Job(label, str(path), "", None, digest, ("unsupported format", f"{path.suffix or 'no suffix'} is not kern, ABC, MusicXML or MIDI"))]
    if not data.strip():
        return [Job(label, str(path), fmt, None, digest, ("empty file", "the file is empty"))]
    if fmt in ("midi",) or path.suffix.lower() == ".mxl":
        return [Job(label, str(path), fmt, None, digest)]
    if b"\x00" in data[:4096]:
        return [Job(label, str(path), fmt, None, digest, ("binary file", f"binary data in a {path.suffix} file"))]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # older Essen kern files are Latin-1
        text = data.decode("latin-1")
    if fmt != "abc":
        return [Job(label, str(path), fmt, text, digest)]
    starts = [m.start() for m in _TUNE_START.finditer(text)]
    if not starts:
        return [Job(label, str(path), fmt, None, digest, ("no notes", "ABC file without any X: tune"))]
    header = text[: starts[0]]
    jobs = []
    for i, start in enumerate(starts):
        tune = header + text[start : starts[i + 1] if i + 1 < len(starts) else len(text)]
        number = tune[len(header) :].split("\n", 1)[0][2:].strip()
        jobs.append(Job(f"{label}#{number or i + 1}", str(path), fmt, tune, hashlib.sha256(tune.encode()).hexdigest()))
    return jobs


def job_key(job: Job, settings: dict[str, Any]) -> str:
    """Cache key of a job's result: its content plus everything that changes how it is read."""
    blob = json.dumps([READER_VERSION, job.fmt, job.digest, settings], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_job(job: Job, settings: dict[str, Any]) -> dict[str, Any]:
    """Read one job → ``{"song": {...}, "counts": {...}}`` or ``{"reason": ..., "detail": ...}``.

    Never raises for bad input: any failure becomes a rejection with its reason.
    """
    if job.problem:
        return {"reason": job.problem[0], "detail": job.problem[1]}
    try:
        score = _parse(job)
    except Exception as exc:  # music21 raises many types for malformed input
        message = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        return {"reason": "unreadable", "detail": f"music21 could not parse it: {message}"}
    try:
        return _song_from_score(score, job, settings)
    except _Reject as rej:
        return {"reason": rej.reason, "detail": rej.detail}
    except Exception as exc:
        return {"reason": "unreadable", "detail": f"{type(exc).__name__}: {str(exc)[:120]}"}


class _Reject(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _parse(job: Job):
    from music21 import converter, stream

    if job.text is not None:
        parsed = converter.parseData(job.text, format=job.fmt)
    else:
        parsed = converter.parse(job.path, format=job.fmt)
    if isinstance(parsed, stream.Opus):
        if not parsed.scores:
            raise ValueError("no tune in the file")
        parsed = parsed.scores[0]
    if job.fmt == "abc":
        carry_accidentals(parsed)
    return parsed


def carry_accidentals(score) -> int:
    """ABC's rule, which music21's ABC reader leaves out: an accidental written on a note holds
    for the notes of the same letter and octave after it in the bar (``^G G`` is G♯ G♯), and a
    note tied over the bar line keeps its pitch. Applied to ``score`` in place, beside music21's
    parse; returns how many pitches it changed. (music21 marks a written accidental with
    ``displayStatus`` True, one from the key signature False.)"""
    from music21 import pitch as m21pitch
    from music21 import stream

    changed = 0
    for part in score.parts if getattr(score, "parts", None) else [score]:
        tied: dict[tuple[str, int], str | None] = {}  # pitches tied into the next bar
        for measure in part.getElementsByClass(stream.Measure):
            written: dict[tuple[str, int], str | None] = {}
            ties: dict[tuple[str, int], str | None] = {}
            for element in measure.recurse().notes:
                for p in element.pitches:
                    where = (p.step, p.octave)
                    name = p.accidental.name if p.accidental is not None else None
                    carried = written.get(where, tied.get(where) if element.tie is not None else None)
                    if p.accidental is not None and p.accidental.displayStatus:
                        written[where] = name
                    elif (where in written or (element.tie is not None and where in tied)) and carried != name:
                        p.accidental = None if carried is None else m21pitch.Accidental(carried)
                        if p.accidental is not None:
                            p.accidental.displayStatus = False
                        changed += 1
                    if element.tie is not None and element.tie.type in ("start", "continue"):
                        ties[where] = p.accidental.name if p.accidental is not None else None
            tied = ties
    return changed


def _song_from_score(score, job: Job, settings: dict[str, Any]) -> dict[str, Any]:
    from music21 import chord, harmony, meter, note, stream

    spq = settings["steps_per_quarter"]
    accepted = {Fraction(d).limit_denominator(64) for d in settings["accepted_durations"]}
    part = score.parts[0] if getattr(score, "parts", None) else score
    counts = {"chords_to_top_note": 0, "grace_notes_dropped": 0}
    phrase_offsets, phrase_source = None, "rule"
    if job.fmt != "humdrum" and phrasing.has_repeats(part):
        try:
            part, phrase_offsets = phrasing.expand_repeats(part)
            phrase_source = "repeats"
        except Exception:  # music21 cannot follow these repeats: read them as written
            counts["repeats_not_expanded"] = 1
    if any(True for _ in part.recurse().getElementsByClass(stream.Voice)):
        part = part.chordify()  # several voices: keep the top line (chords → top note below)
    # chord symbols ("G7" over the tune) are harmony, not melody: music21 lists them as chords
    elements = [e for e in part.flatten().notesAndRests if not isinstance(e, note.Unpitched | harmony.ChordSymbol)]
    for element in elements:
        if element.duration.isGrace:
            counts["grace_notes_dropped"] += 1
            continue
        length = Fraction(element.quarterLength).limit_denominator(64)
        if length not in accepted:
            kind = " (tuplet)" if element.duration.tuplets else ""
            raise _Reject("unaccepted duration", f"a note of {length} quarters{kind}")
    if not any(isinstance(e, note.Note | chord.Chord) and not e.duration.isGrace for e in elements):
        raise _Reject("no notes", "the melody has no pitched notes")
    timesigs = list(part.recurse().getElementsByClass(meter.TimeSignature))
    meter_text = timesigs[0].ratioString if timesigs else "4/4"
    meters = [ts.ratioString for ts in timesigs]
    changes = sum(a != b for a, b in zip(meters, meters[1:]))
    if changes:  # a Song has one meter: the tune is read in its first (primer.read_primer_file says so)
        counts["meter_changes"] = changes
    try:
        bar_steps(meter_text, spq)
    except ValueError as exc:
        raise _Reject("unusable meter", str(exc)) from None
    tonic_pc, mode, tonic_name = _detect_key(part, job.fmt)
    shift = transposition_to(tonic_pc, mode)
    sounding = [e for e in elements if not e.duration.isGrace]
    if phrase_offsets is None and job.text is not None:
        if job.fmt == "humdrum":
            phrase_offsets, phrase_source = phrasing.kern_phrase_offsets(job.text, sounding), "kern marks"
        elif job.fmt == "abc" and phrasing.is_essen_abc(job.text):
            phrase_offsets, phrase_source = phrasing.abc_line_offsets(job.text, sounding), "abc lines"
        elif job.fmt == "abc" and phrasing.has_parts(job.text):
            phrase_offsets, phrase_source = phrasing.abc_line_offsets(job.text, sounding, by="parts"), "parts"

    notes = _melody(sounding, spq, counts)
    if not any(n.pitch is not None for n in notes):
        raise _Reject("no notes", "the melody has no pitched notes")
    notes = [Note(None if n.pitch is None else n.pitch + shift, n.steps) for n in notes]

    title = ""
    if score.metadata is not None:
        title = score.metadata.title or score.metadata.movementName or ""
    song = Song(
        notes=notes,
        steps_per_quarter=spq,
        meter=meter_text,
        bar_starts=_bar_starts(part, spq, timesigs[0] if timesigs else None),
        mode=mode,
        key=tonic_name,
        transposition=shift,
        title=one_line(title) or Path(job.path).stem,
        source=job.label,
    )
    if phrase_offsets:
        song.phrase_starts = clean_phrase_starts(offsets_to_steps(phrase_offsets, spq), song)
        song.phrase_source = phrase_source
    else:  # no marks, or marks we could not align with music21's notes
        song.phrase_starts, song.phrase_source = rule_phrase_starts(song), "rule"
    return {"song": song.to_dict(), "counts": counts}


def _melody(elements, spq: int, counts: dict[str, int]) -> list[Note]:
    """The melody line of music21's notes, rests and chords (top notes), ties merged.

    Ties are merged on the extracted line, not on the chords: a chord's tied top note whose
    lower notes change goes on sounding (music21's ``stripTies`` would re-strike it).
    """
    from music21 import chord, note

    notes: list[Note] = []
    end = 0
    tied = False  # the last note appended is tied into the next one
    for element in elements:
        start_q = Fraction(element.offset).limit_denominator(64)
        start, length = start_q * spq, Fraction(element.quarterLength).limit_denominator(64) * spq
        if start.denominator != 1 or length.denominator != 1:
            raise _Reject("off-grid", f"a note at {start_q} quarters does not fall on the 1/{spq}-quarter grid")
        start, length = int(start), int(length)
        tie = None
        if isinstance(element, chord.Chord):
            counts["chords_to_top_note"] += 1
            top = max(element.notes, key=lambda n: n.pitch.midi)
            pitch, tie = top.pitch.midi, top.tie or element.tie
        elif isinstance(element, note.Note):
            pitch, tie = element.pitch.midi, element.tie
        else:
            pitch = None
        if tied and start == end and notes and pitch is not None and notes[-1].pitch == pitch:
            notes[-1] = Note(pitch, notes[-1].steps + length)
            end = start + length
            tied = tie is not None and tie.type in ("start", "continue")
            continue
        if start > end:
            notes.append(Note(None, start - end))
        elif start < end:  # overlap (MIDI): shorten what came before
            cut = end - start
            while cut and notes:
                last = notes.pop()
                if last.steps > cut:
                    notes.append(Note(last.pitch, last.steps - cut))
                    cut = 0
                else:
                    cut -= last.steps
        notes.append(Note(pitch, length))
        end = start + length
        tied = tie is not None and tie.type in ("start", "continue")
    return notes


def _bar_starts(part, spq: int, first_timesig) -> list[int]:
    """Steps where bars begin.

    A first measure shorter than a full bar is a pickup, not a downbeat. A measure that a line
    break split in two (Essen's ABC does this) is joined back: a new bar starts only once the
    measures since the last bar line fill a whole bar of the meter in force.
    """
    from music21 import stream

    measures = list(part.getElementsByClass(stream.Measure))
    starts: list[int] = []
    current = first_timesig
    filled = None  # quarters since the last bar start; None before the first one
    for i, measure in enumerate(measures):
        if measure.timeSignature is not None:
            current = measure.timeSignature
        full = current.barDuration.quarterLength if current is not None else 4.0
        length = measure.duration.quarterLength
        if i == 0 and len(measures) > 1 and ((measure.paddingLeft or 0) > 0 or length < full):
            continue
        if filled is None or filled >= full - 1e-6 or measure.timeSignature is not None:
            step = Fraction(measure.offset).limit_denominator(64) * spq
            if step.denominator == 1:
                starts.append(int(step))
            filled = length
        else:
            filled += length
    return starts or [0]


def _detect_key(part, fmt: str) -> tuple[int, str, str]:
    """(tonic pitch class, "major"/"minor", tonic name) of a melody.

    A key stated with its mode (kern ``*G:``/``*e:``, MusicXML ``<mode>``, ABC ``K:Em``) is
    trusted. Otherwise music21's key analysis decides, limited to the keys the notation allows:
    Essen's ABC writes only the tonic (``K:G`` for a G-minor tune), so an ABC ``K:G`` allows G
    major and G minor (99% agreement with the kern edition's stated keys on erk); a bare key
    signature allows its major and relative minor.
    """
    from music21 import key

    signatures = list(part.recurse().getElementsByClass(key.KeySignature))
    stated = [k for k in signatures if isinstance(k, key.Key)]  # kern gives *k[] and *C: both
    first = (stated or signatures or [None])[0]
    candidates: set[tuple[int, str]] = set()
    if isinstance(first, key.Key):
        mode = _MODE_FAMILY.get(first.mode, "major")
        explicit = fmt in ("humdrum", "musicxml") or (fmt == "abc" and first.mode != "major")
        if explicit:
            return first.tonic.pitchClass, mode, first.tonic.name
        tonic = first.tonic.pitchClass
        candidates = {(tonic, "major"), (tonic, "minor")}
    elif first is not None:
        major = first.asKey("major").tonic.pitchClass
        candidates = {(major, "major"), ((major + 9) % 12, "minor")}
    analysed = part.analyze("key")
    options = [analysed] + list(analysed.alternateInterpretations)
    fitting = [k for k in options if (k.tonic.pitchClass, k.mode) in candidates] or options
    best = max(fitting, key=lambda k: k.correlationCoefficient)
    return best.tonic.pitchClass, best.mode, best.tonic.name
