"""``prepare``: sources → parsed songs → tokens, vocabulary, split and report, cached on disk.

Two caches: each tune's reading, keyed by content and reading settings (so editing one file
re-reads one file), and the whole encoded dataset, keyed by those and the files' labels (paths),
so a repeated ``prepare`` costs a hash of the inputs and reports its own paths. Caches are
plain JSON. An entry that does not read back, or reads back in the wrong shape, is rebuilt with a
one-line notice: never trusted, never fatal. A lock per dataset makes a second concurrent
``prepare`` of the same corpus wait and reuse the first one's work.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith import __version__
from tunesmith.config import CorpusConfig, EncodingConfig
from tunesmith.corpus.reader import Job, job_key, make_jobs, read_job
from tunesmith.corpus.sources import resolve_sources
from tunesmith.corpus.split import LEAK_INTERVALS, assign_splits, interval_grams, normalise_title, shares_melody
from tunesmith.encoding import Vocabulary, decode_tokens, encode_notes
from tunesmith.errors import TunesmithError
from tunesmith.form import form_statistics
from tunesmith.song import Song

DATASET_VERSION = 1


@dataclass
class Example:
    """One encoded song: ``tokens`` are the body (no ``<s>``/``</s>``); ``song.notes`` decode them."""

    song: Song
    tokens: list[str]
    group: str  # normalised title
    split: str  # "train" | "val"
    extra: bool = False  # from corpus.train_sources (training only)


@dataclass
class Dataset:
    """The encoded corpus as training and evaluation read it."""

    examples: list[Example]
    vocab: Vocabulary
    report: dict[str, Any]
    folder: Path
    steps_per_quarter: int

    def split(self, name: str) -> list[Example]:
        """Examples of "train" or "val"."""
        return [e for e in self.examples if e.split == name]

    @classmethod
    def load(cls, folder: str | Path) -> Dataset:
        """Read a dataset folder back; anything missing, truncated or of the wrong shape is a
        one-line TunesmithError (``prepare`` then rebuilds it)."""
        folder = Path(folder)
        try:
            data = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
            vocab = Vocabulary.load(folder / "vocab.json")
            report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
            if data.get("version") != DATASET_VERSION or not isinstance(report, dict):
                raise ValueError(f"version {data.get('version')!r} or report of the wrong shape")
            spq = data["steps_per_quarter"]
            if not isinstance(spq, int) or isinstance(spq, bool) or not 1 <= spq <= 48:
                raise ValueError(f"steps_per_quarter {spq!r}")
            examples = []
            for item in data["songs"]:
                item = dict(item)
                tokens = item.pop("tokens").split()
                group, split, extra = item.pop("group"), item.pop("split"), item.pop("extra", False)
                if split not in ("train", "val") or not isinstance(group, str):
                    raise ValueError(f"split {split!r}")
                unknown = [t for t in tokens if t not in vocab]
                if unknown:
                    raise ValueError(f"token {unknown[0]!r} is not in the vocabulary")
                examples.append(Example(Song(notes=decode_tokens(tokens), **item), tokens, group, split, extra is True))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, TunesmithError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0][:120]
            raise TunesmithError(f"no readable dataset in {str(folder)!r} ({type(exc).__name__}: {why})") from None
        return cls(examples, vocab, report, folder, spq)


def cache_root(corpus: CorpusConfig) -> Path:
    root = corpus.cache_dir or os.environ.get("TUNESMITH_CACHE") or ""
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tunesmith")
    return Path(root).expanduser()


def prepare(corpus: CorpusConfig, encoding: EncodingConfig, progress: bool = True) -> Dataset:
    """Build (or load from cache) the encoded dataset of ``corpus``.

    Raises TunesmithError when a source does not exist or nothing usable remains.
    """
    corpus.validate()
    encoding.validate()
    started = time.perf_counter()
    main = resolve_sources(corpus.sources)
    listed = {source.path.resolve() for source in main}
    extra = [s for s in resolve_sources(corpus.train_sources) if s.path.resolve() not in listed] if corpus.train_sources else []
    jobs = [job for source in main for job in make_jobs(source)]
    if not jobs:
        raise TunesmithError(f"no files found in {corpus.sources!r}")
    train_only = len(jobs)  # jobs from here on come from corpus.train_sources
    jobs += [job for source in extra for job in make_jobs(source)]
    settings = {"steps_per_quarter": encoding.steps_per_quarter, "accepted_durations": corpus.accepted_durations}
    keys = [job_key(job, settings) for job in jobs]
    split_settings = [corpus.val_fraction, corpus.split_seed, DATASET_VERSION, __version__]
    if extra:
        split_settings += [train_only, LEAK_INTERVALS, "extra"]  # "extra": the entry marks those songs
    labels = [job.label for job in jobs]  # the same files under another path report that path
    dataset_key = hashlib.sha256(json.dumps([keys, labels, split_settings]).encode()).hexdigest()[:20]
    root = cache_root(corpus)
    folder = root / "datasets" / dataset_key
    with _CacheLock(root / "datasets" / f"{dataset_key}.lock"):
        if (folder / "report.json").is_file():
            try:
                dataset = Dataset.load(folder)
            except TunesmithError as exc:
                notice(f"rebuilding the dataset cache: {exc}")
            else:
                if dataset.steps_per_quarter == encoding.steps_per_quarter:
                    dataset.report["cache"] = "hit"
                    dataset.report["seconds"] = round(time.perf_counter() - started, 3)
                    return dataset
                notice(f"rebuilding the dataset cache in {str(folder)!r}: it does not match its key")

        results = _read_all(jobs, keys, settings, root / "songs", corpus.workers, progress)
        dataset = _assemble(jobs, results, corpus, encoding, folder, train_only)
        dataset.report["seconds"] = round(time.perf_counter() - started, 3)
        _write(dataset)
    dataset.report["cache"] = "miss"
    return dataset


def notice(message: str) -> None:
    """A one-line note on stderr (a cache being rebuilt, a wait for another process)."""
    print(f"tunesmith: {message}", file=sys.stderr, flush=True)


class _CacheLock:
    """An exclusive ``flock`` on a cache entry: a second process waits, then finds the first one's work."""

    def __init__(self, path: Path):
        self.path, self.fd = path, -1

    def __enter__(self) -> _CacheLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TunesmithError(f"cannot write the cache in {str(self.path.parent)!r}: {exc.strerror}; "
                                 "set TUNESMITH_CACHE or corpus.cache_dir to a writable folder") from None  # fmt: skip
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            notice("another tunesmith is preparing this corpus; waiting to reuse its work")
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock; the small lock file stays for the next run


def _read_all(jobs: list[Job], keys: list[str], settings: dict, song_cache: Path, workers: int,
              progress: bool) -> list[dict]:  # fmt: skip
    """Results of every job: cached ones from disk, the rest parsed in a process pool."""
    results: list[dict | None] = [None] * len(jobs)
    todo = []
    damaged = 0
    for i, key in enumerate(keys):
        path = song_cache / key[:2] / f"{key}.json"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            todo.append(i)
            continue
        result = _checked_result(text)
        if result is None:
            damaged += 1
            todo.append(i)
        else:
            results[i] = result
    if damaged:
        notice(f"{damaged} cached tune reading(s) in {str(song_cache)!r} did not read back; reading those files again")
    if todo:
        from tqdm import tqdm

        import music21  # noqa: F401  (imported once here so forked workers share it)

        workers = workers or os.cpu_count() or 1
        bar = tqdm(total=len(todo), desc="parsing", unit="tune", disable=not progress or None, leave=False)
        pending = [jobs[i] for i in todo]
        if workers == 1 or len(todo) < 16:
            outputs = (read_job(job, settings) for job in pending)
            _collect(outputs, todo, keys, results, song_cache, bar)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                outputs = pool.map(read_job, pending, [settings] * len(pending), chunksize=8)
                _collect(outputs, todo, keys, results, song_cache, bar)
        bar.close()
    return results  # type: ignore[return-value]


def _checked_result(text: str) -> dict | None:
    """A cached reading if it has the shape ``read_job`` gives, else None."""
    try:
        result = json.loads(text)
        if isinstance(result, dict) and isinstance(result.get("song"), dict):
            Song.from_dict(result["song"])
            if isinstance(result.get("counts"), dict) and all(isinstance(v, int) for v in result["counts"].values()):
                return result
        elif isinstance(result, dict) and isinstance(result.get("reason"), str) and "detail" in result:
            return result
    except (ValueError, TypeError, KeyError, AttributeError):
        pass
    return None


def _collect(outputs, todo: list[int], keys: list[str], results: list, song_cache: Path, bar) -> None:
    for i, result in zip(todo, outputs):
        results[i] = result
        _atomic_write(song_cache / keys[i][:2] / f"{keys[i]}.json", json.dumps(result))
        bar.update(1)


def _assemble(jobs: list[Job], results: list[dict], corpus: CorpusConfig, encoding: EncodingConfig,
              folder: Path, train_only: int) -> Dataset:  # fmt: skip
    """Songs, tokens and splits; songs of jobs from index ``train_only`` on (``corpus.train_sources``)
    are training songs only, and are left out when their title group is a validation group or
    their melody shares a run with a validation song (:func:`~tunesmith.corpus.split.shares_melody`)."""
    songs: list[Song] = []
    extra: list[bool] = []  # from corpus.train_sources
    rejected: Counter[str] = Counter()
    rejections = []
    counts: Counter[str] = Counter()
    for index, (job, result) in enumerate(zip(jobs, results)):
        if "song" in result:
            songs.append(Song.from_dict(result["song"]))
            extra.append(index >= train_only)
            counts.update(result["counts"])
        else:
            rejected[result["reason"]] += 1
            rejections.append({"source": job.label, "reason": result["reason"], "detail": result["detail"]})
    if not songs:
        reasons = ", ".join(f"{n} {r}" for r, n in rejected.most_common())
        raise TunesmithError(f"no usable songs in {corpus.sources!r} ({len(jobs)} read: {reasons})")
    token_lists = [encode_notes(s.notes) for s in songs]
    groups = [normalise_title(s.title) or s.source for s in songs]
    splits = assign_splits(groups, corpus.val_fraction, corpus.split_seed)
    held_out: set[tuple[int, ...]] = set()  # only needed to screen training-only songs
    for song, split, more in zip(songs, splits, extra) if any(extra) else ():
        if split == "val" and not more:
            held_out |= interval_grams([n.pitch for n in song.notes])
    left_out: Counter[str] = Counter()
    examples = []
    for song, tokens, group, split, more in zip(songs, token_lists, groups, splits, extra):
        if more and split == "val":
            left_out["validation title"] += 1
            continue
        if more and shares_melody([n.pitch for n in song.notes], held_out):
            left_out["validation melody"] += 1
            continue
        song.notes = decode_tokens(tokens)  # the canonical notes (rests merged, trailing rests gone)
        examples.append(Example(song, tokens, group, split, more))
    vocab = Vocabulary.build([e.tokens for e in examples])
    report = _report(jobs, examples, vocab, rejected, rejections, counts, corpus, encoding)
    if corpus.train_sources:
        report["train_sources"] = corpus.train_sources
        report["train_only"] = {"kept": sum(extra) - sum(left_out.values()), "left_out": dict(left_out)}
    return Dataset(examples, vocab, report, folder, encoding.steps_per_quarter)


def _report(jobs, examples, vocab, rejected, rejections, counts, corpus, encoding) -> dict[str, Any]:
    pitches = vocab.pitches
    split_info = {}
    for name in ("train", "val"):
        part = [e for e in examples if e.split == name]
        split_info[name] = {"songs": len(part), "groups": len({e.group for e in part}),
                            "tokens": sum(len(e.tokens) + 2 for e in part)}  # fmt: skip
    return {
        "sources": corpus.sources,
        "songs_read": len(jobs),
        "songs_kept": len(examples),
        "songs_rejected": sum(rejected.values()),
        "rejected_by_reason": dict(rejected.most_common()),
        "rejections": rejections,
        "chords_to_top_note": counts["chords_to_top_note"],
        "grace_notes_dropped": counts["grace_notes_dropped"],
        "tokens": sum(len(e.tokens) + 2 for e in examples),
        "vocabulary_size": len(vocab),
        "pitch_range": [min(pitches), max(pitches)] if pitches else [],
        "modes": dict(Counter(e.song.mode for e in examples).most_common()),
        "meters": dict(Counter(e.song.meter for e in examples).most_common()),
        "split": split_info,
        "form": form_statistics([e.song for e in examples]),
        "val_fraction": corpus.val_fraction,
        "steps_per_quarter": encoding.steps_per_quarter,
    }


def _write(dataset: Dataset) -> None:
    songs = []
    for e in dataset.examples:
        meta = e.song.to_dict()
        del meta["notes"]
        songs.append({**meta, "group": e.group, "split": e.split, **({"extra": True} if e.extra else {}),
                      "tokens": " ".join(e.tokens)})  # fmt: skip
    data = {"version": DATASET_VERSION, "steps_per_quarter": dataset.steps_per_quarter, "songs": songs}
    (dataset.folder / "report.json").unlink(missing_ok=True)  # unmark while the entry is rewritten
    _atomic_write(dataset.folder / "dataset.json", json.dumps(data))
    _atomic_write(dataset.folder / "vocab.json", dataset.vocab.to_json())
    _atomic_write(dataset.folder / "report.json", json.dumps(dataset.report, indent=1))  # last: marks complete


def _atomic_write(path: Path, text: str) -> None:
    """Write through a temp file and a rename; on failure (a full disk) remove the temp file and
    raise a one-line TunesmithError naming the path."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise TunesmithError(f"cannot write the cache file {str(path)!r}: {exc.strerror or exc}") from None
