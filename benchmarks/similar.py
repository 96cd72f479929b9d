"""Similar past requests as precedents: do they share the request's labels?

    python benchmarks/similar.py

A reviewer reads the similar past requests beside a suggestion as precedents: how was this
decided before? Trained on ``train.jsonl`` with the default config, the model shows for each
request up to five past requests found by words and characters and up to two in the other
language of German and English, found in the German–English concept space at its link
similarity (``cross_language``). For eval and every held-out set of text in unseen styles,
this prints
- by words: the share of the shown requests whose labels are exactly the request's own;
- across languages: how many requests get one, and the same share for those shown.
Half of the past requests are in the other language, and words hardly ever match across
languages, so without the concept space a reviewer would see that half only by chance.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.quality import default_held_out_sets, format_table, warm_up
from model.predictor import TriageModel
from training.config import load_config
from training.data import Sample, load_samples
from training.pipeline import fit_estimator
from training.train import DEFAULT_EVAL, DEFAULT_TRAIN


def agreement(model: TriageModel, samples: list[Sample]) -> list[str]:
    """Table cells: by words (share alike, shown), across languages (requests, share, shown)."""
    by_words, across, with_across = [], [], 0
    suggestions = model.suggest_many([s.text for s in samples])
    for sample, suggestion in zip(samples, suggestions, strict=True):
        wanted = set(sample.labels)
        alike = [(s.cross_language, set(s.labels) == wanted) for s in suggestion.similar]
        by_words += [same for cross, same in alike if not cross]
        found = [same for cross, same in alike if cross]
        across += found
        with_across += bool(found)
    return [
        f"{sum(by_words) / max(len(by_words), 1):.3f} ({len(by_words)})",
        f"{with_across} of {len(samples)}",
        f"{sum(across) / len(across):.3f} ({len(across)})" if across else "–",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=DEFAULT_TRAIN, help="training JSONL")
    parser.add_argument("--eval", type=Path, default=DEFAULT_EVAL, help="evaluation JSONL")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    warm_up()
    train = load_samples(args.train).samples
    estimator, _ = fit_estimator(train, load_config())
    model = TriageModel(estimator, "benchmark")
    sets = default_held_out_sets(DEFAULT_TRAIN.parent, load_samples(args.eval).samples)
    print(f"Model trained on {len(train)} requests; link at {model.concept_link_similarity}")
    header = [
        "set",
        "by words: labels alike (shown)",
        "requests with one across languages",
        "across languages: labels alike (shown)",
    ]
    rows = [[name, *agreement(model, samples)] for name, samples in sets.items()]
    print(format_table(header, rows))
    print(f"Wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
