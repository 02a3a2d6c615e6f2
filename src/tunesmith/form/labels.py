"""Form letters: which phrase restates which, form strings, compliance and repetition.

Similarity. A phrase is the sequence of its notes as ``(pitch, steps)`` pairs: the pitch in
semitones above or below the phrase's first sounding note (None for rests), so a restatement
at another pitch level is still the same phrase — this is the interval sequence, read from
the phrase's start, so one changed note costs one substitution — and the note's length in
steps. Two phrases are compared by the edit distance of these sequences (insert/delete cost
1, substitution 0 when equal, 0.5 when only the length differs, else 1), divided by the
longer sequence's length:

The *cadence* of a phrase is its notes from its last bar line on, its *body* the notes before.

* **same** (same letter) when the distance is at most ``SAME`` (0.25), the phrases last the
  same number of bars, and their cadences are identical (or either has no body of at least
  three notes to tell a variant by);
* **variant** (``A'``: the same letter with a prime) when the bodies are the same by the
  distance rule (at least three notes each) but the cadences differ — only the cadence
  changed;
* otherwise **different** (a new letter).

Labelling walks the phrases in order: a phrase takes the letter of the first earlier phrase
it is the same as (or that phrase's variant), else becomes a variant of the first earlier
letter it varies, else takes the next new letter. Variants of one letter that differ from
each other get more primes (A', A'').
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from tunesmith.errors import TunesmithError
from tunesmith.form.phrases import Phrase, song_phrases
from tunesmith.song import Song

SAME = 0.25  # highest normalised edit distance of two phrases with the same letter
MIN_BODY_NOTES = 3  # a variant must agree on at least this many notes before the cadence
MAX_BARS = 64  # longest phrase a form string may ask for
BATCHED_CELLS = 1000  # edit-distance cells from which NumPy's fixed costs pay (pair_distances; measured on erk's songs)
_TOKEN = re.compile(r"\s*([A-Za-z])((?:'|′|’)*)(\d+)?\s*")


@dataclass(frozen=True)
class FormPhrase:
    """One phrase of a form: ``letter`` ("A"), ``primes`` (1 for A'), ``bars`` (None = any)."""

    letter: str
    primes: int = 0
    bars: int | None = None

    @property
    def label(self) -> str:
        return self.letter + "'" * self.primes


@dataclass
class Compliance:
    """How well a song meets a form: ``pairs_ok`` of ``pairs`` phrase pairs behave as asked."""

    ok: bool
    phrases_expected: int
    phrases_found: int
    pairs: int
    pairs_ok: int
    problems: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return self.pairs_ok / self.pairs if self.pairs else float(self.ok)


def phrase_items(song: Song, phrase: Phrase, before: int | None = None) -> list[tuple[int | None, int]]:
    """The ``(pitch above the first note, steps)`` sequence of a phrase (notes before ``before``)."""
    items, first, step = [], None, phrase.start
    for note in song.notes[phrase.first_note : phrase.last_note]:
        if before is not None and step >= before:
            break
        if note.pitch is None:
            items.append((None, note.steps))
        else:
            first = note.pitch if first is None else first
            items.append((note.pitch - first, note.steps))
        step += note.steps
    return items


def _last_bar_line(song: Song, phrase: Phrase) -> int:
    """Step of the last bar line inside a phrase (its start when it has none)."""
    inside = [b for b in song.bar_starts if phrase.start < b < phrase.end]
    return max(inside, default=phrase.start)


def distance(a: list, b: list) -> float:
    """Normalised edit distance of two ``(pitch, steps)`` sequences, 0 (equal) to 1."""
    if a == b:  # also both empty; restated bars and phrases are common
        return 0.0
    if not a or not b:
        return 1.0
    pitches = [y[0] for y in b]
    row = [float(j) for j in range(len(b) + 1)]
    for i, x in enumerate(a, 1):
        diagonal, left, pitch = row[0], float(i), x[0]
        row[0] = left
        for j, y in enumerate(b, 1):
            up = row[j]
            cost = 0.0 if x == y else 0.5 if pitch == pitches[j - 1] else 1.0
            left = min(up + 1.0, left + 1.0, diagonal + cost)
            diagonal, row[j] = up, left
    return row[-1] / max(len(a), len(b))


def distance_matrix(sequences: list[list]) -> np.ndarray:
    """:func:`distance` between every two of ``sequences``, ``[n, n]`` (symmetric, 0 on the
    diagonal): the same values to the last bit, all pairs computed at once (:func:`_distances`)."""
    count = len(sequences)
    out = np.zeros((count, count))
    if count < 2:
        return out
    first, second = np.tril_indices(count, -1)
    out[first, second] = out[second, first] = _distances(sequences, first, second)
    return out


def pair_distances(pairs: list[tuple[list, list]]) -> list[float]:
    """:func:`distance` of each ``(a, b)`` pair, the same values to the last bit: pairs with
    little to compare one by one, more at once (:func:`_distances`)."""
    if not pairs or sum(len(a) * len(b) for a, b in pairs) < BATCHED_CELLS:
        return [distance(a, b) for a, b in pairs]
    sequences = [sequence for pair in pairs for sequence in pair]
    return _distances(sequences, np.arange(0, len(sequences), 2), np.arange(1, len(sequences), 2)).tolist()


def _distances(sequences: list[list], first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """:func:`distance` of ``sequences[first[k]]`` and ``sequences[second[k]]`` for every k, at once.

    Row ``i`` of the edit-distance table follows from row ``i − 1`` by
    ``new[j] = min(t[j], new[j − 1] + 1)`` with ``t[j] = min(up + 1, diagonal + cost)``, i.e.
    ``new[j] = min over k ≤ j of (t[k] + j − k)``: a running minimum along the row, for every pair
    at once. Every cost is a multiple of 0.5, so each sum is exact and no order of the minima can
    change a bit of the result.
    """
    count = len(sequences)
    sizes = np.array([len(s) for s in sequences], dtype=np.int64)
    width = max(1, int(sizes.max()))
    filled = np.arange(width) < sizes[:, None]
    items = np.full((count, width), -1, dtype=np.int64)  # each distinct (pitch, steps) item's number
    pitches = np.full((count, width), -1, dtype=np.int64)  # each distinct pitch's number (None too)
    flat = [x for sequence in sequences for x in sequence]
    codes: dict = {}
    pitch_codes: dict = {}
    items[filled] = [codes.setdefault(x, len(codes)) for x in flat]
    pitches[filled] = [pitch_codes.setdefault(x[0], len(pitch_codes)) for x in flat]
    equal = (sizes[first] == sizes[second]) & (items[first] == items[second]).all(axis=1)
    values = np.where(equal, 0.0, 1.0)  # equal (both empty too): 0; one of them empty: 1
    todo = ~equal & (sizes[first] > 0) & (sizes[second] > 0)
    if todo.any():
        a, b = first[todo], second[todo]
        size_a, size_b = sizes[a], sizes[b]
        longest = int(size_a.max())
        # cost[p, i, j] of putting a's item i on b's item j: 0 equal, 0.5 same pitch, else 1
        cost = np.where(items[a, :longest, None] == items[b, None, :], 0.0,
                        np.where(pitches[a, :longest, None] == pitches[b, None, :], 0.5, 1.0))  # fmt: skip
        # rows kept less their column index (cell - j): the running minimum is then a plain one
        cost -= 1.0  # (diagonal + cost) - j = (diagonal - (j - 1)) + cost - 1
        kept = np.zeros((longest + 1, a.size, width + 1))  # row 0: j insertions, j - j = 0
        kept[:, :, 0] = np.arange(longest + 1)[:, None]  # column 0: i deletions
        for i in range(1, longest + 1):
            before, row = kept[i - 1], kept[i]
            np.minimum(before[:, 1:] + 1.0, before[:, :-1] + cost[:, i - 1], out=row[:, 1:])
            np.minimum.accumulate(row, axis=1, out=row)
        # each pair's cell at row len(a), column len(b), its column index added back
        last = kept[size_a, np.arange(a.size), size_b] + size_b
        values[todo] = last / np.maximum(size_a, size_b)
    return values


def relation(song: Song, a: Phrase, b: Phrase) -> str:
    """"same", "variant" or "different" (see the module docstring)."""
    return _relations([(a, b, _parts(song, a), _parts(song, b))])[0]


def _parts(song: Song, phrase: Phrase) -> tuple[list, list]:
    """A phrase's items and its body's (the items before its last bar line), as relations read them."""
    return phrase_items(song, phrase), phrase_items(song, phrase, before=_last_bar_line(song, phrase))


def _relations(pairs: list[tuple[Phrase, Phrase, tuple[list, list], tuple[list, list]]]) -> list[str]:
    """:func:`relation` of each ``(a, b, parts_a, parts_b)`` (the phrases' :func:`_parts`), their
    edit distances computed together (:func:`pair_distances`)."""
    whole, bodies, asked = [], [], []
    for a, b, (items_a, body_a), (items_b, body_b) in pairs:
        has_bodies = min(len(body_a), len(body_b)) >= MIN_BODY_NOTES
        same_cadence = items_a[len(body_a) :] == items_b[len(body_b) :] if has_bodies else True
        whole.append(len(asked) if a.bars == b.bars and same_cadence else None)
        if whole[-1] is not None:
            asked.append((items_a, items_b))
        bodies.append(len(asked) if has_bodies else None)
        if has_bodies:
            asked.append((body_a, body_b))
    found = pair_distances(asked)
    return ["same" if w is not None and found[w] <= SAME else "variant" if v is not None and found[v] <= SAME
            else "different" for w, v in zip(whole, bodies)]  # fmt: skip


def _earlier_relations(phrases: list[Phrase], song: Song) -> list[list[str]]:
    """For each phrase, its :func:`relation` to every earlier one (``[i][j]``: phrase ``j`` to ``i``),
    each phrase's parts read once and every pair's distances computed together."""
    parts = [_parts(song, phrase) for phrase in phrases]
    found = iter(_relations([(phrases[j], phrases[i], parts[j], parts[i]) for i in range(len(phrases)) for j in range(i)]))
    return [[next(found) for _ in range(i)] for i in range(len(phrases))]


def label_phrases(song: Song, phrases: list[Phrase] | None = None) -> list[str]:
    """Form letter of each phrase ("A", "A'", "B"…), by the rules in the module docstring."""
    phrases = song_phrases(song) if phrases is None else phrases
    earlier = _earlier_relations(phrases, song)
    labels: list[str] = []
    for relations in earlier:
        label = None
        for j, rel in enumerate(relations):
            if rel == "same":
                label = labels[j]
                break
        if label is None:
            for j, rel in enumerate(relations):
                if rel == "variant":
                    letter = labels[j].rstrip("'")
                    primes = {len(x) - 1 for x in labels if x.rstrip("'") == letter}
                    label = letter + "'" * (max(primes) + 1)
                    break
        if label is None:
            used = {x.rstrip("'") for x in labels}
            letter = chr(ord("A") + len(used)) if len(used) < 26 else "Z"
            label = letter
        labels.append(label)
    return labels


def form_string(labels: list[str], phrases: list[Phrase] | None = None) -> str:
    """Labels joined by spaces ("A A' B A"), with each phrase's bars when ``phrases`` are given."""
    if phrases is None:
        return " ".join(labels)
    return " ".join(f"{label}{p.bars}" for label, p in zip(labels, phrases))


def parse_form(text: str) -> list[FormPhrase]:
    """Parse a form string: letters with optional primes and lengths in bars.

    Accepted: ``"AABA"``, ``"A A' B A"``, ``"A4 A4 B4 A4"``, ``"A8A'8B8"``. Letters are A–Z
    (case-insensitive); a prime is ``'`` or ``′``; a number after a phrase is its length in
    bars (1–64), given for every phrase or for none. New letters must come in order (A, then
    B…), and a variant (A') may only follow its letter. Raises TunesmithError (one line)
    otherwise.
    """
    source = (text or "").strip()
    if not source:
        raise TunesmithError("empty form: write letters such as 'AABA' or \"A A' B A\" or 'A4 A4 B4 A4'")
    result, pos = [], 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if not match or match.end() == pos:
            raise TunesmithError(f"bad form {text!r}: unexpected {source[pos]!r} at position {pos + 1}")
        letter, primes, bars = match.group(1).upper(), len(match.group(2)), match.group(3)
        if bars is not None and not 1 <= int(bars) <= MAX_BARS:
            raise TunesmithError(f"bad form {text!r}: phrase length {bars} is not 1–{MAX_BARS} bars")
        result.append(FormPhrase(letter, primes, None if bars is None else int(bars)))
        pos = match.end()
    if len({p.bars is None for p in result}) > 1:
        raise TunesmithError(f"bad form {text!r}: give a length in bars to every phrase or to none")
    seen: list[str] = []
    for phrase in result:
        if phrase.letter not in seen:
            expected = chr(ord("A") + len(seen))
            if phrase.letter != expected:
                raise TunesmithError(f"bad form {text!r}: letters must be introduced in order, expected {expected} before {phrase.letter}")
            if phrase.primes:
                raise TunesmithError(f"bad form {text!r}: {phrase.label} comes before any {phrase.letter}")
            seen.append(phrase.letter)
    return result


def compliance(song: Song, form: str | list[FormPhrase]) -> Compliance:
    """Whether ``song``'s phrases follow ``form``: pairs with the same label are "same", the
    same letter with other primes "variant" (or same), different letters "different", and
    lengths in bars match where the form gives them.
    """
    wanted = parse_form(form) if isinstance(form, str) else list(form)
    phrases = song_phrases(song)
    problems = []
    if len(phrases) != len(wanted):
        problems.append(f"{len(phrases)} phrases, the form has {len(wanted)}")
    n = min(len(phrases), len(wanted))
    earlier = _earlier_relations(phrases[:n], song)
    pairs = ok = 0
    for i in range(n):
        if wanted[i].bars is not None and phrases[i].bars != wanted[i].bars:
            problems.append(f"phrase {i + 1} lasts {phrases[i].bars} bars, not {wanted[i].bars}")
        for j in range(i):
            pairs += 1
            rel = earlier[i][j]
            a, b = wanted[j], wanted[i]
            if a.letter != b.letter:
                good, want = rel == "different", "different"
            elif a.primes == b.primes:
                good, want = rel == "same", "the same"
            else:
                good, want = rel in ("variant", "same"), "a variant"
            ok += good
            if not good:
                problems.append(f"phrases {j + 1} ({a.label}) and {i + 1} ({b.label}) should be {want}, are {rel}")
    return Compliance(not problems, len(wanted), len(phrases), pairs, ok, problems)


def repetition(song: Song, size: int = 4) -> float:
    """Share of the song's ``size``-note patterns that repeat an earlier one in the same song.

    A pattern is ``size`` consecutive sounding notes as their ``size - 1`` intervals and
    ``size`` lengths (rests are skipped, so it is transposition-invariant); it repeats when
    an identical pattern starts at an earlier note. 0.0 for songs shorter than one pattern.
    """
    pitches = [n.pitch for n in song.notes if n.pitch is not None]
    lengths = [n.steps for n in song.notes if n.pitch is not None]
    steps = [b - a for a, b in zip(pitches, pitches[1:])]
    # each window: its size - 1 intervals, then its size lengths (one flat tuple per pattern)
    patterns = list(zip(*(steps[k:] for k in range(size - 1)), *(lengths[k:] for k in range(size))))
    total = len(patterns)  # every pattern after the first of its kind repeats an earlier one
    return (total - len(set(patterns))) / total if total else 0.0
