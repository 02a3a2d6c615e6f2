"""Several generation requests decoded as one pass, each still reproducible from its own seed.

A server answering many clients at once would otherwise decode each request alone, one after
the other (Python holds the GIL, so threads do not overlap). Requests that share their sampling
settings (scheme, temperature, top-k/p) are decoded as one pass
(:func:`~tunesmith.generate.decode.decode_plans`), each with its own
plan — so with its own drawn form, phrases and length — and its own random stream seeded with
its seed, drawing exactly what :meth:`Generator.generate` draws for it (lengths, keys, modes,
meters, masks and primers may differ: each lives in its request's plan). So a request gives the
melody it gives alone, whatever it is batched with (form retries included: a melody that
misses its form is composed again from the next seed, the retries of a pass again as one pass).

Only one-melody requests with a per-step scheme are batched; a request for several melodies
(whose rows share one stream) or for beam search runs alone, through :meth:`Generator.generate`.
A server passes a ``decode`` hook (its shared decoding loop, :mod:`tunesmith.studio.decoder`);
then each plan with a form decodes its first form retry beside it, so a miss waits for nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tunesmith.errors import TunesmithError
from tunesmith.generate.config import GenerationConfig
from tunesmith.generate.melody import Melody
from tunesmith.generate.plan import Plan

MAX_BATCH_ROWS = 256  # rows of one pass (as CHUNK_ROWS: larger passes cost less per row)
CANDIDATE_STRIDE = 1_000_000_007  # candidate k of a request with seed s has seed s + k * stride


# What requests sharing a pass must share: the chooser's settings. Everything else a request sets
# (length, form, key, mode, meter, masks, primer, seed) lives in its own plan, and the batched loop
# decodes plans that differ in all of those, each as it is decoded alone.
DECODING_SETTINGS = ("scheme", "temperature", "top_k", "top_p", "mixed_p")


def batch_key(config: GenerationConfig) -> tuple | None:
    """What must match for two requests to share a pass (the chooser's settings); None when
    ``config`` runs alone (several melodies, or beam search)."""
    if config.num != 1 or config.scheme == "beam":
        return None
    return tuple((name, repr(getattr(config, name))) for name in DECODING_SETTINGS)


def generate_batch(generator, configs: list[GenerationConfig], max_rows: int = MAX_BATCH_ROWS,
                   return_errors: bool = False, decode=None) -> list[Any]:  # fmt: skip
    """The melodies of each of ``configs``, in order: ``result[i]`` equals ``generator.generate(configs[i])``.

    Requests with equal :func:`batch_key` are decoded together, at most ``max_rows`` at a time.
    A bad request raises its TunesmithError, or with ``return_errors`` takes that error's place in
    the result (so one bad request does not fail the others). ``decode(plans, config, ahead=…)``
    decodes the plans (default ``generator.decode_plans``; the studio's shared loop), and the
    ``ahead`` plans (each form request's first retry) or None for those it skips; if it fails,
    each request is decoded again alone by ``generator.decode_plans``.
    """
    if any(chooses(generator, config) for config in configs):
        return _best_candidates(generator, configs, max_rows, return_errors, decode)
    return _generate_batch(generator, configs, max_rows, return_errors, decode)


def _generate_batch(generator, configs: list[GenerationConfig], max_rows: int, return_errors: bool, decode,
                    spare: bool = True, retry: bool = True) -> list[Any]:  # fmt: skip
    results: list[Any] = [None] * len(configs)
    groups: dict[tuple, list[tuple[int, GenerationConfig, Plan]]] = {}
    for index, config in enumerate(configs):
        try:
            key = batch_key(config)
            if key is None:
                results[index] = generator.generate(config)
            else:
                plan = generator.plan(config)
                groups.setdefault(key, []).append((index, config, plan))
        except TunesmithError as exc:
            if not return_errors:
                raise
            results[index] = exc
    for members in groups.values():
        for first in range(0, len(members), max_rows):
            chunk = members[first : first + max_rows]
            try:
                melodies = _decode_together(generator, [(config, plan) for _, config, plan in chunk], decode, spare, retry)
            except TunesmithError as exc:
                if not return_errors:
                    raise
                melodies = [exc] * len(chunk)
                if len(chunk) > 1 or decode is not None:  # which request failed: each alone, so the others still get theirs
                    melodies = [_one(generator, config, plan) for _, config, plan in chunk]
            for (index, _, _), melody in zip(chunk, melodies):
                results[index] = melody if isinstance(melody, TunesmithError) else [melody]
    return results


def _one(generator, config: GenerationConfig, plan: Plan) -> Any:
    """One request decoded alone, or its TunesmithError."""
    try:
        return _decode_together(generator, [(config, plan)])[0]
    except TunesmithError as exc:
        return exc


def chooses(generator, config: GenerationConfig) -> bool:
    """Whether ``config`` asks for candidates this generator can choose among (a critic, no beam search)."""
    return config.candidates > 1 and config.scheme != "beam" and generator.critic is not None


def candidate_seed(seed: int, candidate: int) -> int:
    """The seed of candidate ``candidate`` of a request with ``seed``: candidate 0 is the request
    itself (``--candidates 1`` gives it), the others lie far from every ``seed + i`` of its melodies."""
    return seed + candidate * CANDIDATE_STRIDE


def _best_candidates(generator, configs: list[GenerationConfig], max_rows: int, return_errors: bool, decode) -> list[Any]:
    """``configs`` with their candidates composed as one batch (each candidate its own request,
    with its own seed, decoded as it would be alone), then melody ``i`` of each request is the
    candidate's melody ``i`` that honours its form, most song-like by the critic (ties: the first)."""
    from tunesmith.generate.plan import make_seed

    expanded, owners = [], []
    for index, config in enumerate(configs):
        count = config.candidates if chooses(generator, config) else 1
        seed = make_seed(config.seed)
        for candidate in range(count):
            expanded.append(replace(config, seed=candidate_seed(seed, candidate), candidates=1))
            owners.append((index, candidate, count, seed))
    # a candidate that misses its form is not composed again at once (nor decoded ahead): its sibling
    # most likely honours it; only a melody none of whose candidates does is retried, below
    results = _generate_batch(generator, expanded, max_rows, return_errors, decode, spare=False, retry=False)
    _score(generator, [m for result, owner in zip(results, owners) if owner[2] > 1 and isinstance(result, list) for m in result])
    chosen: list[Any] = [None] * len(configs)
    sources: dict[int, GenerationConfig] = {}  # id of a kept melody -> its candidate's request
    for result, config, (index, candidate, count, seed) in zip(results, expanded, owners):
        if isinstance(result, TunesmithError) or isinstance(chosen[index], TunesmithError):
            chosen[index] = chosen[index] if isinstance(chosen[index], TunesmithError) else result
            continue
        for melody in result:
            sources[id(melody)] = config
            if count > 1:
                melody.params.update(seed=seed, candidates=count, candidate=candidate)
        chosen[index] = result if chosen[index] is None else [max(a, b, key=_merit) for a, b in zip(chosen[index], result)]
    missed = [(index, i, melody) for index, result in enumerate(chosen) if isinstance(result, list)
              for i, melody in enumerate(result) if melody.params.get("form_honoured") is False]  # fmt: skip
    if missed:  # as generate does: composed again from the next seeds, the retries as one pass
        retried = [([melody], generator.plan(sources[id(melody)]), sources[id(melody)]) for _, _, melody in missed]
        generator.honour_forms(retried, decode=decode)
        for (index, i, melody), (again, _, _) in zip(missed, retried):
            if again[0] is not melody:
                again[0].params.update({k: melody.params[k] for k in ("seed", "candidates", "candidate") if k in melody.params})
                if "critic" in melody.params:
                    _score(generator, again)
                chosen[index][i] = again[0]
    return chosen


def _score(generator, melodies: list[Melody]) -> None:
    """Each melody's critic score, in its params (one call: the features of all at once)."""
    for melody, score in zip(melodies, generator.critic.score([m.song for m in melodies]).tolist()):
        melody.params["critic"] = round(score, 4)


def _merit(melody: Melody) -> tuple[bool, float]:
    """What a kept candidate has most of: its form honoured, then the critic's score."""
    return melody.params.get("form_honoured") is not False, melody.params["critic"]


def _decode_together(generator, requests: list[tuple[GenerationConfig, Plan]], decode=None, spare: bool = True,
                     retry: bool = True) -> list[Any]:  # fmt: skip
    """One decoding pass over requests that share their sampling settings: one row each
    (and, with a server's ``decode`` and ``spare``, each form request's first retry beside it);
    with ``retry`` a melody that misses its form is composed again (else only marked so)."""
    from tunesmith.form import compliance

    config = requests[0][0]
    plans = [plan for _, plan in requests]
    ahead: list[Any] = [None] * len(plans)
    if decode is None:  # (a request's few candidates decode by the lean loop: decode.LEAN_ROWS)
        decoded = generator.decode_plans(plans, config, max_rows=len(plans))
    else:  # a server: each plan with a form may decode its first form retry beside it (a miss then waits for nothing)
        spares = [i for i, plan in enumerate(plans) if spare and plan.form is not None and plan.num == 1]
        decoded = decode(plans, config, ahead=[replace(plans[i], seed=plans[i].seed + 1) for i in spares])
        for i, rows in zip(spares, decoded[len(plans) :]):
            ahead[i] = rows  # None where the decoder skipped it
        decoded = decoded[: len(plans)]
    melodies: list[Any] = [generator._melody(rows.ids[0], 0, c, p) for rows, (c, p) in zip(decoded, requests)]
    missed = []
    for i, (melody, (c, p)) in enumerate(zip(melodies, requests)):
        if p.form is not None:  # as generate does: a melody that misses its form is composed again
            melody.params["form_honoured"] = compliance(melody.song, p.form.form.phrases).ok
            if not melody.params["form_honoured"]:
                missed.append(i)
    if missed and retry:  # the retries of the pass as one pass
        retried = [([melodies[i]], requests[i][1], requests[i][0]) for i in missed]
        generator.honour_forms(retried, decode=decode, ahead=[ahead[i] for i in missed])
        for i, (again, _, _) in zip(missed, retried):
            melodies[i] = again[0]
    _harmonize([(m, c) for m, (c, _) in zip(melodies, requests) if isinstance(m, Melody)])
    return melodies


def _harmonize(melodies: list[tuple[Melody, GenerationConfig]]) -> None:
    """Chord symbols for each melody whose request asks for them (``--chords``)."""
    for melody, config in melodies:
        if config.chords:
            from tunesmith.harmony import harmonize_with_shipped

            melody.song.chords = harmonize_with_shipped(melody.song, config.chord_span)
