"""Speed and memory of the triage model; prints tables.

    python benchmarks/speed.py             # full run (several minutes: 16x training)
    python benchmarks/speed.py --quick     # 1x and 4x training only, fewer repeats

Measures predictions per second (one by one and batched, with and without explanations and
similar requests; batched also on texts a fresh process reads for the first time), training
time at 1x, 4x and 16x the sample size (the extra requests are perturbed copies: typos, case,
dropped words), model load time and peak memory (max RSS of a fresh process per measurement,
so one figure does not inflate the next).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from benchmarks.common import isolated, scaled_samples  # noqa: E402
from model import Registry, TriageModel  # noqa: E402
from training.config import load_config  # noqa: E402
from training.data import load_samples  # noqa: E402
from training.pipeline import fit_estimator  # noqa: E402
from training.train import train  # noqa: E402

TRAIN = REPO / "data" / "samples" / "train.jsonl"
EVAL = REPO / "data" / "samples" / "eval.jsonl"


def sample_texts() -> list[str]:
    """Every eval and train request's text: what the prediction rows are timed on."""
    return [s.text for s in load_samples(EVAL).samples + load_samples(TRAIN).samples]


def rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return n / best


def prediction_figures(model_dir: Path, repeats: int) -> list[tuple[str, float]]:
    model = Registry(model_dir).load()
    texts = sample_texts()
    batch = texts * 2
    ids = list(range(len(batch)))
    model.suggest_many(texts[:100])  # warm caches
    single = texts[:300]
    cores = os.cpu_count() or 1
    return [
        (
            "one by one, scores only (suggest, explain=False)",
            rate(lambda: [model.suggest(t, explain=False) for t in single], len(single), repeats),
        ),
        (
            "one by one, with explanations + similar",
            rate(lambda: [model.suggest(t) for t in single], len(single), repeats),
        ),
        (
            "batch, 1 process, no explanations",
            rate(lambda: model.suggest_many(batch, explain=False), len(batch), repeats),
        ),
        (
            "batch, 1 process, with explanations + similar",
            rate(lambda: model.suggest_many(batch), len(batch), repeats),
        ),
        (
            f"batch JSON lines, {cores} processes, no explanations",
            rate(
                lambda: model.json_lines(batch, ids, explain=False, n_jobs=cores),
                len(batch),
                repeats,
            ),
        ),
        (
            f"batch JSON lines, {cores} processes, with explanations + similar",
            rate(
                lambda: model.json_lines(batch, ids, explain=True, n_jobs=cores),
                len(batch),
                repeats,
            ),
        ),
        (
            "probabilities only (score_matrix), 1 process",
            rate(lambda: model.score_matrix(batch), len(batch), repeats),
        ),
    ]


def first_sight_figures(model_dir: Path) -> dict:
    """``triage predict`` on texts this process has never read: nothing remembered yet.

    The other rows repeat their texts, so every word is known by the time they are timed;
    here each text is read once, by a new interpreter, as a batch job reads a new file.
    """
    model = Registry(model_dir).load()
    texts = sample_texts()
    cores = os.cpu_count() or 1
    started = time.perf_counter()
    model.json_lines(texts, list(range(len(texts))), explain=False, n_jobs=cores)
    return {"rate": len(texts) / (time.perf_counter() - started), "cores": cores}


def training_figures(factor: int) -> dict:
    samples = scaled_samples(load_samples(TRAIN).samples, factor)
    started = time.perf_counter()
    fit_estimator(samples, load_config())
    return {"n": len(samples), "seconds": time.perf_counter() - started}


def load_figures(model_dir: Path) -> dict:
    started = time.perf_counter()
    model = Registry(model_dir).load()
    seconds = time.perf_counter() - started
    model.suggest("warm up")
    return {"seconds": seconds}


def serving_memory(model_dir: Path) -> dict:
    model: TriageModel = Registry(model_dir).load()
    texts = [s.text for s in load_samples(EVAL).samples] * 10
    model.suggest_many(texts)
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip 16x training, fewer repeats")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    repeats = 2 if args.quick else 3
    factors = (1, 4) if args.quick else (1, 4, 16)
    results: dict[str, object] = {"cores": os.cpu_count()}

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "models"
        print("training a model on data/samples …", file=sys.stderr)
        train(model_dir=model_dir)

        print(
            "\nPredictions per second (eval + train texts, best of "
            f"{repeats}; {os.cpu_count()} cores)"
        )
        figures = isolated(lambda: {"rows": prediction_figures(model_dir, repeats)})
        for name, value in figures["rows"]:
            print(f"  {name:<58} {value:>9,.0f} /s")
        # A new interpreter: a fork would inherit the words this process read while training.
        first = isolated(functools.partial(first_sight_figures, model_dir), fresh=True)
        name = f"batch JSON lines, {first['cores']} processes, no explanations, texts new"
        print(f"  {name:<58} {first['rate']:>9,.0f} /s")
        results["predictions_per_second"] = {**dict(figures["rows"]), name: first["rate"]}
        results["prediction_peak_rss_mb"] = figures["peak_rss_mb"]

        loaded = isolated(lambda: load_figures(model_dir))
        serving = isolated(lambda: serving_memory(model_dir))
        print(
            f"\nModel load time: {loaded['seconds'] * 1000:.0f} ms; peak memory of a process "
            f"that loads the model and suggests for 2,800 requests: "
            f"{serving['peak_rss_mb']:.0f} MB"
        )
        results["load_seconds"] = loaded["seconds"]
        results["serving_peak_rss_mb"] = serving["peak_rss_mb"]

    print("\nTraining time (fit with 5-fold CV for calibration and thresholds)")
    print(f"  {'size':<6}{'requests':>10}{'seconds':>10}{'peak MB':>10}")
    results["training"] = []
    for factor in factors:
        print(f"  training at {factor}x …", file=sys.stderr)
        figures = isolated(lambda factor=factor: training_figures(factor))
        print(
            f"  {str(factor) + 'x':<6}{figures['n']:>10,}{figures['seconds']:>10.1f}"
            f"{figures['peak_rss_mb']:>10.0f}"
        )
        results["training"].append({"factor": factor, **figures})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
