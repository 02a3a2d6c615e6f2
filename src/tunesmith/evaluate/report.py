"""Evaluation results → ``report.md`` (tables + figures), ``metrics.json`` and ``generated.json``."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import DEFAULT_DURATIONS
from tunesmith.errors import TunesmithError
from tunesmith.evaluate.metrics import INTERVAL_LIMIT
from tunesmith.evaluate.structure import DEGREE_BINS

PREDICTION_ROWS = [("bits_per_step", "bits / step"), ("bits_per_event", "bits / event"),
                   ("pitch_bits_per_note", "pitch bits / note"), ("accuracy", "accuracy"),
                   ("onset_accuracy", "onset accuracy")]  # fmt: skip


# Tick labels of the histogram features' bins.
BIN_LABELS = {
    "pitch_class_histogram": ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"],
    "interval_histogram": [f"{i:+d}" if i else "0" for i in range(-INTERVAL_LIMIT, INTERVAL_LIMIT + 1)],
    "note_length_histogram": [f"{d:g}" for d in DEFAULT_DURATIONS] + ["other"],
    "phrase_final_degrees": list(DEGREE_BINS),
}


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy → Python, NaN → None, plot curves dropped."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "curves"}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_json(results: dict[str, Any]) -> dict[str, Any]:
    """The results as ``metrics.json`` holds them: every figure, no per-melody feature arrays."""
    kept = {k: v for k, v in results.items() if k not in ("features", "generated_songs", "examples")}
    return _plain(kept)


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table cell; "–" for a missing or non-finite one."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _figures(results: dict[str, Any], out: Path) -> list[tuple[str, str]]:
    """Draw the figures; returns (file name, caption) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    real, generated = results["features"]["real"], results["features"]["generated"]
    scalars = [name for name, values in real.items() if np.ndim(values) == 1]
    histograms = [name for name, values in real.items() if np.ndim(values) == 2]

    fig, axes = _grid(plt, len(scalars), 4, 3.0)
    for ax, name in zip(axes.flat, scalars):
        values = np.concatenate([real[name], generated[name]])
        low, high = float(values.min()), float(values.max())
        if high - low < 1e-9 * max(1.0, abs(high)):  # (nearly) constant: numpy cannot split the range
            low, high = low - 0.5, high + 0.5
        bins = np.linspace(low, high, min(25, max(5, len(np.unique(values)))) + 1)
        ax.hist(real[name], bins=bins, alpha=0.55, density=True, label="real")
        ax.hist(generated[name], bins=bins, alpha=0.55, density=True, label="generated")
        ax.set_title(name.replace("_", " "))
    axes.flat[0].legend()
    fig.tight_layout()
    fig.savefig(out / "features.png", dpi=90)
    plt.close(fig)
    figures.append(("features.png", "Per-melody features, real vs generated"))

    fig, axes = plt.subplots(1, len(histograms), figsize=(5 * len(histograms), 3.6))
    for ax, name in zip(np.atleast_1d(axes), histograms):
        index = np.arange(real[name].shape[1])
        ax.bar(index - 0.2, real[name].mean(0), width=0.4, label="real")
        ax.bar(index + 0.2, generated[name].mean(0), width=0.4, label="generated")
        ax.set_title(f"mean {name.replace('_', ' ')}")
        labels = BIN_LABELS.get(name)
        if labels and len(labels) == len(index):
            step = 1 if len(labels) <= 13 else 3  # keep 25 interval labels legible
            ax.set_xticks(index[::step], labels[::step], fontsize=8)
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    fig.savefig(out / "histograms.png", dpi=90)
    plt.close(fig)
    figures.append(("histograms.png", "Mean pitch-class, interval (semitones), note-length (quarters) and "
                                      "phrase-final degree histograms"))  # fmt: skip

    features = results["statistics"]["features"]
    fig, axes = _grid(plt, len(features), 5, 3.0)
    for ax, (name, stats) in zip(axes.flat, features.items()):
        curves = stats["curves"]
        ax.plot(curves["grid"], curves["real"], label="intra real")
        ax.plot(curves["grid"], curves["generated"], label="intra generated")
        ax.fill_between(curves["grid"], curves["inter"], alpha=0.3, color="C2", label="inter")
        ax.set_title(f"{name.replace('_', ' ')}  OA {stats['overlap']:.2f}", fontsize=9)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "overlap.png", dpi=90)
    plt.close(fig)
    figures.append(("overlap.png", "Distance densities per feature (Yang & Lerch): intra-set and inter-set"))

    examples = results.get("examples") or {}
    if examples.get("real") or examples.get("generated"):
        figures.append(_self_similarity_figure(plt, examples, out))

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, stats in results["originality"].items():
        ax.hist(stats["longest_notes"], bins=range(0, max(stats["longest_notes"] + [1]) + 2), alpha=0.55,
                density=True, label=name)  # fmt: skip
    ax.set_xlabel("longest stretch shared with the training corpus (notes)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "originality.png", dpi=90)
    plt.close(fig)
    figures.append(("originality.png", "Longest stretch shared with the training corpus"))

    dry = results.get("dryout")
    if dry:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        curve = np.array([np.nan if v is None else v for v in dry["curve"]])
        ax.plot(np.arange(1, len(curve) + 1), curve, marker=".", label="generated")
        ax.axhline(dry["real_notes_per_bar"], color="C1", linestyle="--", label=f"real {dry['meter']} {dry['mode']} songs")
        ax.legend(loc="lower left")
        ax.set_xlabel("bar")
        ax.set_ylabel("notes per bar (mean)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"dry-out: last ÷ first quarter = {fmt(dry['ratio'], 2)}")
        fig.tight_layout()
        fig.savefig(out / "dryout.png", dpi=90)
        plt.close(fig)
        figures.append(("dryout.png", f"Notes per bar over {dry['bars']}-bar generations"))
    return figures


def _grid(plt, panels: int, columns: int, size: float):
    """A figure with enough panels in rows of ``columns``; the unused ones are hidden."""
    rows = max(1, math.ceil(panels / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    return fig, axes


def _self_similarity_figure(plt, examples: dict, out: Path) -> tuple[str, str]:
    """Bars × bars self-similarity heat maps of the example real and generated songs."""
    from tunesmith.evaluate.structure import repetition_share, self_similarity_matrix

    panels = [("real", song) for song in examples.get("real", [])]
    panels += [("generated", song) for song in examples.get("generated", [])]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.6), squeeze=False)
    for ax, (kind, song) in zip(axes.flat, panels):
        matrix = self_similarity_matrix(song)
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="magma", origin="lower",
                          extent=(0.5, len(matrix) + 0.5, 0.5, len(matrix) + 0.5))  # fmt: skip
        ax.set_title(f"{kind}: {song.title[:22]}\nrepetition {repetition_share(song):.0%}", fontsize=8)
        ax.set_xlabel("bar")
    axes.flat[0].set_ylabel("bar")
    fig.colorbar(image, ax=list(axes.flat), shrink=0.8, label="similarity (1 − edit distance)")
    fig.savefig(out / "selfsim.png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "selfsim.png", ("Bars × bars self-similarity (each bar's intervals and lengths, 1 − edit distance): "
                           "real songs left, generated right; restated phrases show as off-diagonal stripes")


def _prediction(results: dict[str, Any]) -> list[str]:
    model, ngram = results["prediction"]["model"], results["prediction"]["ngram"]
    lines = ["## Prediction", "", f"| metric | model | n-gram (order {ngram['order']}, Witten-Bell) |", "|---|---:|---:|"]
    return lines + [f"| {label} | {fmt(model[key])} | {fmt(ngram[key])} |" for key, label in PREDICTION_ROWS]


def _statistics(results: dict[str, Any]) -> list[str]:
    summary = results["statistics"]["summary"]
    lines = [
        "## Generated vs real (Yang & Lerch)", "",
        f"Summary: mean overlap area **{summary['overlap']:.3f}** (1 = indistinguishable), "
        f"mean KL divergence **{summary['kl']:.3f}** nats (0 = indistinguishable).", "",
        "| feature | real mean | generated mean | intra real | intra generated | inter | overlap | KL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    real, generated = results["features"]["real"], results["features"]["generated"]
    for name, f in results["statistics"]["features"].items():
        scalar = np.ndim(real[name]) == 1
        means = f"{real[name].mean():.3f} | {generated[name].mean():.3f}" if scalar else "(histogram) | (histogram)"
        spread = " | ".join(f"{f[k]['mean']:.3f} ± {f[k]['sd']:.3f}" for k in ("real", "generated", "inter"))
        lines.append(f"| {name.replace('_', ' ')} | {means} | {spread} | {f['overlap']:.3f} | {f['kl']:.3f} |")
    return lines


def _originality(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Originality", "",
        "Longest stretch (notes compared by interval and length, so in any key) shared with the training split.", "",
        f"| set | mean (notes) | median (notes) | mean (bars) | copying > {fmt(results['settings']['copy_bars'], 0)} bars |",
        "|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    for name, label in (("generated", "generated"), ("real", "held-out real (human baseline)")):
        o = results["originality"][name]
        cells = [fmt(o["mean_notes"], 1), fmt(o["median_notes"], 1), fmt(o["mean_bars"], 2), f"{o['copy_share']:.1%}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _structure(results: dict[str, Any]) -> list[str]:
    structure = results.get("structure")
    if not structure:
        return []
    real, gen = structure["real"], structure["generated"]

    def pct(value: float) -> str:
        return f"{value:.1%}"

    rows = [
        ("repeated 4-note patterns (share of a song's patterns, mean)", "repetition", pct),
        ("phrase self-similarity (best match of each phrase to an earlier one, mean)", "phrase_similarity", fmt),
        ("bar self-similarity (mean off-diagonal of the bars × bars matrix)", "bar_similarity", fmt),
        ("ends on the tonic", "tonic_endings", pct),
        ("final note length (quarters, mean)", "final_note_length", fmt),
        ("final note length (quarters, median)", "final_note_length_median", fmt),
        ("phrases per song (mean)", "phrases_per_song", lambda v: fmt(v, 2)),
    ]
    lines = ["## Structure", "",
             "Phrases are the real songs' marks and the generated melodies' recorded phrases, else the form "
             "module's rule (`tunesmith.form`); similarity and repetition are the form module's.", "",
             "| figure | held-out real | generated |", "|---|---:|---:|"]  # fmt: skip
    lines += [f"| {label} | {show(real[key])} | {show(gen[key])} |" for label, key, show in rows]
    for key, label in (("phrase_final_degrees", "phrase-final degrees"), ("song_final_degrees", "song-final degree")):
        cells = [", ".join(f"{d}: {v:.0%}" for d, v in list(s[key].items())[:5]) or "–" for s in (real, gen)]
        lines.append(f"| {label} (top 5) | {cells[0]} | {cells[1]} |")
    comp = gen.get("compliance")
    if comp:
        forms = ", ".join(f"{f} ({n})" for f, n in list(comp["forms"].items())[:5])
        lines += ["", f"Requested forms ({forms}): honoured in full by **{comp['honoured']:.1%}** of "
                      f"{comp['requested']} melodies; {comp['pair_score']:.1%} of phrase pairs behave as asked "
                      "(`tunesmith.form.compliance`)."]  # fmt: skip
    return lines


def _classifier(results: dict[str, Any]) -> list[str]:
    c = results["classifier"]
    with_structure = " with the structure features" if c.get("structure") else ""
    lines = ["## Passes as human?", "",
             f"A {c['kind']} classifier{with_structure}, {c['folds']}-fold cross-validated on {c['per_set']} "
             f"generated + {c['per_set']} real melodies: accuracy **{c['accuracy']:.1%} ± {c['sd']:.1%}** "
             "(50% = indistinguishable)."]  # fmt: skip
    basic = results.get("classifier_basic")
    if basic:
        lines += ["", f"Without the structure features (note-level features only): {basic['accuracy']:.1%} ± "
                      f"{basic['sd']:.1%}."]  # fmt: skip
    if c["top_features"]:
        lines += ["", "Most telling features: " + ", ".join(f"{n} ({w:.2f})" for n, w in c["top_features"]) + "."]
    return lines


def _dryout(results: dict[str, Any]) -> list[str]:
    dry = results.get("dryout")
    if not dry:
        return []
    return ["## Dry-out", "",
            f"{results['counts']['dryout']} melodies of {dry['bars']} bars in {dry['meter']} {dry['mode']} (`</s>` "
            f"forbidden so each runs the whole length). Last-quarter ÷ first-quarter notes per bar: "
            f"**{fmt(dry['ratio'])}** (median per melody {fmt(dry['median_song_ratio'])}); real {dry['meter']} "
            f"{dry['mode']} songs of ≥ {results['settings']['dryout']['min_bars']} bars, each over its own length: "
            f"{fmt(dry['real_ratio'])} ({dry['real_songs']} songs; {fmt(dry['real_notes_per_bar'], 2)} notes "
            "per bar; their ratio reflects how tunes close, on long notes)."]  # fmt: skip


def markdown(results: dict[str, Any], figures: list[tuple[str, str]]) -> str:
    """The report text: a header, one section per question, the figures and the time taken."""
    counts = results["counts"]
    left_out = f", {counts['unspellable']} with tokens the model lacks left out" if counts["unspellable"] else ""
    lines = [f"# Evaluation of `{results['model']}`", "",
             f"Evaluation set: {results['evaluation_set']} ({counts['evaluated']} songs{left_out}); training split "
             f"{counts['train']} songs; {counts['generated']} generated melodies of up to "
             + (f"{results['settings']['bars']} bars." if results['settings']['bars']
                else "the length of a real song of the same mode and meter.")]  # fmt: skip
    for section in (_prediction, _statistics, _structure, _originality, _classifier, _dryout):
        part = section(results)
        lines += ["", *part] if part else []
    lines += ["", "## Figures", ""] + [f"![{caption}]({name})\n\n*{caption}*\n" for name, caption in figures]
    seconds = results["seconds"]
    timing = " · ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    lines += ["## Time", "", f"{timing} — total {sum(seconds.values()):.1f} s", ""]
    return "\n".join(lines)


def write_report(results: dict[str, Any], out: str | Path) -> Path:
    """Write ``report.md``, its PNG figures, ``metrics.json`` and ``generated.json`` into ``out``.

    The time spent drawing is added to ``results["seconds"]["report"]``. Returns the report's path.
    """
    out = Path(out)
    started = time.perf_counter()
    try:
        out.mkdir(parents=True, exist_ok=True)
        figures = _figures(results, out)
        results["seconds"]["report"] = round(time.perf_counter() - started, 2)
        (out / "metrics.json").write_text(json.dumps(metrics_json(results), indent=1), encoding="utf-8")
        songs = [song.to_dict() for song in results.get("generated_songs", [])]
        (out / "generated.json").write_text(json.dumps(songs), encoding="utf-8")
        report = out / "report.md"
        report.write_text(markdown(results, figures), encoding="utf-8")
    except OSError as exc:
        raise TunesmithError(f"cannot write the report to {str(out)!r}: {exc.strerror}") from None
    return report
