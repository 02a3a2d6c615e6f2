"""``tunesmith evaluate``: score a model on prediction, statistics, originality, dry-out and a classifier."""

from __future__ import annotations

import argparse


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint to evaluate (e.g. models/erk.pt)")
    parser.add_argument("--corpus", action="append", metavar="SOURCE",
                        help="evaluate on this file, folder or bundled corpus (repeatable; "
                             "default: the model's own validation split)")  # fmt: skip
    parser.add_argument("--num", type=int, default=200,
                        help="generated melodies compared with the real ones; 0 = one per real song (200)")
    parser.add_argument("--form", default="",
                        help="ask every generated melody for this form (\"AABA\", \"A4 A4 B4 A4\") and report "
                             "how often it is honoured (needs a form-aware generator)")  # fmt: skip
    parser.add_argument("--bars", type=int, default=0,
                        help="length of each generated melody in bars (default 0: the real songs' lengths)")
    parser.add_argument("--seed", type=int, default=0, help="generation and cross-validation seed (0)")
    parser.add_argument("--half", choices=("all", "dev", "test", "calib"), default="all",
                        help="evaluate on one fixed half of the evaluation set (by title group): choose settings "
                             "on dev, report test; calib: a fixed fifth of the training songs, to calibrate "
                             "generation settings without any validation song (all)")
    parser.add_argument("--dryout-num", type=int, default=32, help="long melodies for the dry-out test; 0 = skip (32)")
    parser.add_argument("--dryout-bars", type=int, default=64, help="length of the dry-out melodies in bars (64)")
    parser.add_argument("--classifier", choices=("forest", "logistic"), default="forest",
                        help="generated-vs-real discriminator (forest)")  # fmt: skip
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="torch device (auto)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 = torch's default (1)")
    parser.add_argument("--out", required=True,
                        help="new (or empty) folder for report.md, figures and metrics.json")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def run_evaluate(args: argparse.Namespace) -> int:
    from tunesmith.evaluate.classifier import ClassifierConfig
    from tunesmith.evaluate.dryout import DryoutConfig
    from tunesmith.evaluate.pipeline import EvaluateConfig, evaluate
    from tunesmith.evaluate.report import write_report
    from tunesmith.rundir import reserve_run_folder

    config = EvaluateConfig(
        num=args.num, bars=args.bars, seed=args.seed, form=args.form, corpus=list(args.corpus or []),
        half=args.half,
        device=args.device,
        threads=args.threads,
        progress=not args.no_progress, dryout=DryoutConfig(num=args.dryout_num, bars=args.dryout_bars),
        classifier=ClassifierConfig(kind=args.classifier, seed=args.seed),
    )  # fmt: skip
    config.validate()
    # Reserved before any work: an existing report is never overwritten and a second run into
    # the same folder fails at once; the report is written aside and moved in when complete.
    with reserve_run_folder(args.out) as run:
        results = evaluate(args.model, config)
        report = write_report(results, run.tmp)
    print_summary(results, run.path / report.relative_to(run.tmp))
    return 0


def print_summary(results: dict, report) -> None:
    """The headline figures as a rich table."""
    from rich.console import Console
    from rich.table import Table

    from tunesmith.evaluate.report import fmt

    model, ngram = results["prediction"]["model"], results["prediction"]["ngram"]
    originality, classifier = results["originality"], results["classifier"]
    table = Table(title=f"tunesmith evaluate — {results['evaluation_set']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("bits / step (model | n-gram)",
         f"{model['bits_per_step']:.3f} | {ngram['bits_per_step']:.3f} (order {ngram['order']})"),
        ("bits / event", f"{model['bits_per_event']:.3f} | {ngram['bits_per_event']:.3f}"),
        ("pitch bits / note", f"{model['pitch_bits_per_note']:.3f} | {ngram['pitch_bits_per_note']:.3f}"),
        ("accuracy", f"{model['accuracy']:.3f} | {ngram['accuracy']:.3f}"),
        ("onset accuracy", f"{model['onset_accuracy']:.3f} | {ngram['onset_accuracy']:.3f}"),
        ("overlap area (mean of features)", f"{results['statistics']['summary']['overlap']:.3f}"),
        ("KL divergence (mean)", f"{results['statistics']['summary']['kl']:.3f}"),
        ("longest shared (notes, generated | real)",
         f"{originality['generated']['mean_notes']:.1f} | {originality['real']['mean_notes']:.1f}"),
        ("copying > 2 bars (generated | real)",
         f"{originality['generated']['copy_share']:.1%} | {originality['real']['copy_share']:.1%}"),
        ("classifier accuracy", f"{classifier['accuracy']:.1%} ± {classifier['sd']:.1%}"),
    ]  # fmt: skip
    if results.get("classifier_basic"):
        basic = results["classifier_basic"]
        rows[-1] = ("classifier accuracy (with | without structure)",
                    f"{classifier['accuracy']:.1%} ± {classifier['sd']:.1%} | {basic['accuracy']:.1%} ± {basic['sd']:.1%}")
    if results.get("structure"):
        real, gen = results["structure"]["real"], results["structure"]["generated"]
        rows += [
            ("repeated 4-note patterns (real | generated)", f"{real['repetition']:.1%} | {gen['repetition']:.1%}"),
            ("tonic endings (real | generated)", f"{real['tonic_endings']:.1%} | {gen['tonic_endings']:.1%}"),
            ("final note, quarters (real | generated)",
             f"{real['final_note_length']:.2f} | {gen['final_note_length']:.2f}"),
        ]
        if gen.get("compliance"):
            rows.append(("requested form honoured", f"{gen['compliance']['honoured']:.1%}"))
    if results.get("dryout"):
        dry = results["dryout"]
        rows.append(("dry-out (last ÷ first quarter)", f"{fmt(dry['ratio'])} (real songs {fmt(dry['real_ratio'])})"))
    rows.append(("time", f"{sum(results['seconds'].values()):.1f} s"))
    rows.append(("report", str(report)))
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)
