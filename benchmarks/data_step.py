"""Does a batch of new training requests help? Paired cross-validation with and without it.

    python benchmarks/data_step.py --since tr4416          # the tail of train from that id on
    python benchmarks/data_step.py --new more.jsonl        # a file not yet in train

The step is either the training requests from ``--since`` on (data is appended to
``train.jsonl``, so a round of writing is its tail) or the requests of ``--new`` files. The
rest of train plus eval is split into grouped folds (a request and its translation on one side,
``training.pipeline.grouped_folds``); every fold's test part is scored by two models, one
trained on the fold's training part alone and one on it plus the step. The step's own requests
are never scored, and a translation in the step of a request under test is left out of that
fold, so a step cannot flatter itself; both models see the same folds, so the differences are
paired. Then the model on all of train with and without the step is judged on eval and on every
held-out set of text in unseen styles (see ``benchmarks/quality.py``), plus the share of
translation pairs labelled alike.

This is how each round of sample data was judged before it stayed (``docs/quality.md``).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from joblib import Parallel, delayed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.quality import (
    OPTIONAL_FILES,
    default_held_out_sets,
    fit_ours,
    format_table,
    judge,
    same_across_languages,
    warm_up,
)
from training.data import Sample, load_samples, translation_pairs
from training.pipeline import group_of, grouped_folds
from training.train import DEFAULT_EVAL, DEFAULT_TRAIN

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paired:
    """One fold's macro F1 and security recall, without and with the step."""

    f1_without: float
    f1_with: float
    recall_without: float
    recall_with: float


def split_step(
    train: list[Sample], since: str | None, new: list[Sample]
) -> tuple[list[Sample], list[Sample]]:
    """(base, step): train's tail from the id ``since`` on, or the ``new`` requests."""
    if since is None:
        return train, new
    ids = [s.id for s in train]
    if since not in ids:
        raise SystemExit(f"--since {since}: no such id in the training file")
    start = ids.index(since)
    return train[:start], train[start:] + new


def score_fold(base_train: list[Sample], step: list[Sample], test: list[Sample]) -> Paired:
    """Fit without and with the step on one fold's training part; judge both on its test part."""
    without = judge(fit_ours(base_train, n_jobs=1), test)
    with_step = judge(fit_ours(base_train + step, n_jobs=1), test)
    return Paired(
        without["macro_f1"],
        with_step["macro_f1"],
        without["per_label"]["security"]["recall"],
        with_step["per_label"]["security"]["recall"],
    )


def paired_cv(
    pool: list[Sample], step: list[Sample], folds: int, repeats: int, seed: int, jobs: int
) -> list[Paired]:
    groups = [group_of(s) for s in pool]
    splits = grouped_folds(groups, folds, seed, repeats)
    tasks = (
        delayed(score_fold)(
            [pool[i] for i in train_idx],
            # A translation in the step of a request under test would score it for it.
            [s for s in step if group_of(s) not in {groups[i] for i in test_idx}],
            [pool[i] for i in test_idx],
        )
        for train_idx, test_idx in splits
    )
    results = []
    for k, fold in enumerate(Parallel(n_jobs=jobs, return_as="generator")(tasks), start=1):
        logger.info(
            "fold %2d/%d  macro F1 %.3f -> %.3f", k, len(splits), fold.f1_without, fold.f1_with
        )
        results.append(fold)
    return results


def mean_sd(values: Sequence[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):+.3f} ± {sd:.3f}"


def cv_summary(results: list[Paired]) -> str:
    f1 = [r.f1_with - r.f1_without for r in results]
    recall = [r.recall_with - r.recall_without for r in results]
    up, down = sum(d > 0 for d in f1), sum(d < 0 for d in f1)
    without = statistics.fmean(r.f1_without for r in results)
    return (
        f"macro F1 {without:.3f} without the step; with it {mean_sd(f1)} "
        f"({up} of {len(f1)} folds up, {down} down); security recall {mean_sd(recall)}"
    )


def held_out_table(
    base: list[Sample], step: list[Sample], sets: dict[str, list[Sample]], pairs: list
) -> str:
    rows = []
    for name, training in (("without the step", base), ("with the step", base + step)):
        started = time.perf_counter()
        predict = fit_ours(training)
        logger.info(
            "%s: trained on %d in %.0f s", name, len(training), time.perf_counter() - started
        )
        cells = [name]
        for samples in sets.values():
            metrics = judge(predict, samples)
            recall = metrics["per_label"]["security"]["recall"]
            cells.append(f"{metrics['macro_f1']:.3f} / {recall:.3f}")
        if pairs:
            cells.append(f"{same_across_languages(predict, pairs):.3f}")
        rows.append(cells)
    header = ["model (macro F1 / security recall)", *sets, *(["x-lang same"] if pairs else [])]
    return format_table(header, rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=DEFAULT_TRAIN, help="training JSONL")
    parser.add_argument("--eval", type=Path, default=DEFAULT_EVAL, help="evaluation JSONL")
    parser.add_argument("--since", help="the step is train's requests from this id on")
    parser.add_argument(
        "--new", type=Path, nargs="*", default=[], help="JSONL files of requests not yet in train"
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--jobs", type=int, default=2, help="folds run in parallel processes")
    parser.add_argument("--no-cv", action="store_true", help="held-out sets only")
    args = parser.parse_args(argv)
    if args.since is None and not args.new:
        parser.error("give the step: --since ID or --new FILE")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    started = time.perf_counter()
    new = [s for path in args.new for s in load_samples(path).samples]
    base, step = split_step(load_samples(args.train).samples, args.since, new)
    evaluation = load_samples(args.eval).samples
    folder = DEFAULT_TRAIN.parent
    sets = default_held_out_sets(folder, evaluation)
    translations = folder / OPTIONAL_FILES["translations"][0]
    pairs = (
        translation_pairs(sets["unseen"], load_samples(translations))
        if "unseen" in sets and translations.exists()
        else []
    )
    warm_up()
    print(f"Step: {len(step)} requests; without it: {len(base)} in train, {len(evaluation)} eval")
    if not args.no_cv:
        results = paired_cv(base + evaluation, step, args.folds, args.repeats, args.seed, args.jobs)
        print(
            f"Paired {args.repeats} × {args.folds}-fold CV over train without the step + eval "
            f"(n={len(base) + len(evaluation)}): {cv_summary(results)}"
        )
    print(held_out_table(base, step, sets, pairs))
    print(f"Wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
