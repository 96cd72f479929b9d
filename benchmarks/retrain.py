"""Wall time and peak memory of ``triage retrain`` with many reviewed requests; prints a table.

    python benchmarks/retrain.py                 # 1,000, 10,000 and 50,000 reviews
    python benchmarks/retrain.py --sizes 1000    # just one size

Reviewed requests are perturbed copies of the training samples (typos, case, dropped words),
so no two are identical. Each size runs in a fresh process against a registry whose champion
was trained on the samples; peak memory is that process's max RSS. Goal: under 10 minutes
and 4 GB at 50,000 on a 2-core machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from benchmarks.common import isolated, scaled_samples  # noqa: E402
from training.data import load_samples  # noqa: E402
from training.retrain import ReviewedRequest, retrain  # noqa: E402
from training.train import DEFAULT_TRAIN, train  # noqa: E402


def reviews(n: int) -> list[ReviewedRequest]:
    base = load_samples(DEFAULT_TRAIN).samples
    factor = -(-n // len(base)) + 1
    samples = scaled_samples(base, factor)[len(base) :][:n]
    return [
        ReviewedRequest(
            id=f"bench-{k}",
            text=s.text,
            labels=s.labels,
            lang=s.lang,
            suggested_labels=s.labels,
            blind=k % 10 == 0,
            reviewed_at=f"2026-{1 + k % 12:02d}-{1 + k % 28:02d}T09:00:00+00:00",
        )
        for k, s in enumerate(samples)
    ]


def run(n: int, champion_dir: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        shutil.copytree(champion_dir, models)
        reviewed = reviews(n)
        started = time.perf_counter()
        result = retrain(reviewed, models, dry_run=True)
        return {
            "n": n,
            "seconds": time.perf_counter() - started,
            "trained_on": result.report["data"]["train"]["n"],
            "status": result.status,
            "artifact_mb": sum(
                p.stat().st_size for p in (models / "versions").rglob("model.joblib")
            )
            / 2
            / 1e6,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        champion = Path(tmp) / "champion"
        print("training the champion on data/samples …", file=sys.stderr)
        train(model_dir=champion)
        print(
            f"{'reviews':>9}{'trained on':>12}{'wall s':>9}{'main MB':>9}{'worker MB':>11}"
            f"{'all PSS MB':>12}{'artifact MB':>13}"
        )
        for n in args.sizes:
            print(f"  retraining with {n:,} reviews …", file=sys.stderr)
            row = isolated(lambda n=n: run(n, champion))
            # Memory in use at once: proportional set size of the run and its fold workers,
            # sampled every 0.25 s (pages the forked workers share are counted once).
            total = row["peak_pss_total_mb"]
            print(
                f"{row['n']:>9,}{row['trained_on']:>12,}{row['seconds']:>9.0f}"
                f"{row['peak_rss_mb']:>9.0f}{row['worker_peak_rss_mb']:>11.0f}{total:>12.0f}"
                f"{row['artifact_mb']:>13.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
