"""One training run: validate, fit, evaluate, write a registry version, promote it."""

from __future__ import annotations

import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from model.estimator import LABELS
from model.predictor import TriageModel
from model.registry import Registry
from training.config import TrainConfig, load_config
from training.data import DataError, DataProblem, Sample, load_many, load_samples
from training.evaluate import metrics_of, scored
from training.pipeline import Progress, _no_progress, fit_estimator
from training.report import write_report

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRAIN = REPO_ROOT / "data" / "samples" / "train.jsonl"
DEFAULT_EVAL = REPO_ROOT / "data" / "samples" / "eval.jsonl"
_LIBS = ("scikit-learn", "spacy", "numpy", "scipy", "joblib")


@dataclass(frozen=True)
class TrainResult:
    version: str
    path: Path
    metrics: dict[str, Any]
    promoted: bool
    seconds: float
    # Requests of which the model read no word (see ``FitReport.unread``).
    unread: list[str] = field(default_factory=list)
    # Why the version was saved but not made current (too few examples of a label), if so.
    held_back: str | None = None


# A label needs this many requests with it and without it before a model trained on the data
# may replace the current one: fewer cannot be learnt (a file of three requests, or one with
# every security request left out, gave models that were promoted all the same).
MIN_EXAMPLES = 20


def too_thin(samples: list[Sample]) -> str | None:
    """Why a model trained on ``samples`` may not replace the current one, or None: each label
    needs ``MIN_EXAMPLES`` requests with it and as many without it."""
    found = []
    for label in LABELS:
        having = sum(label in s.labels for s in samples)
        for count, side in ((having, "with"), (len(samples) - having, "without")):
            if count < MIN_EXAMPLES:
                found.append(f"{count} requests {side} {label!r}")
    if not found:
        return None
    return f"the training data has {', '.join(found)} (at least {MIN_EXAMPLES} needed)"


class RegistryNotWritable(OSError):
    """The registry cannot take a new version; found before training, not after it."""


def check_writable(registry: Registry) -> None:
    """Make sure a version can be written to ``registry`` (creating its folders if needed)."""
    try:
        registry.versions_dir.mkdir(parents=True, exist_ok=True)
        # The same kind of write ``Registry.save`` starts with: a staging folder.
        with tempfile.TemporaryDirectory(dir=registry.versions_dir, prefix=".tmp-check-"):
            pass
    except OSError as exc:
        raise RegistryNotWritable(
            f"model directory {registry.root} cannot take a new version: "
            f"{exc.filename or registry.versions_dir}: {exc.strerror or exc}; nothing was trained"
        ) from exc


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=5
    ).stdout.strip()


def git_revision() -> tuple[str | None, bool]:
    """Short commit of the working tree and whether it has uncommitted changes."""
    try:
        sha = _git("rev-parse", "--short=7", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
        return sha or None, dirty
    except (OSError, subprocess.SubprocessError):
        return None, False


def library_versions() -> dict[str, str]:
    libs = {"python": platform.python_version()}
    for name in _LIBS:
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            libs[name] = "unknown"
    return libs


def train(
    data_paths: list[Path] | None = None,
    eval_path: Path | None = None,
    model_dir: Path | None = None,
    config: TrainConfig | None = None,
    promote: bool = True,
    progress: Progress = _no_progress,
) -> TrainResult:
    """Train on ``data_paths``, evaluate on ``eval_path``, save a version and promote it.

    Nothing is written to the registry unless every input file validates.
    """
    started = time.perf_counter()
    config = config or load_config()
    data_files = load_many(data_paths or [DEFAULT_TRAIN])
    eval_file = load_samples(eval_path or DEFAULT_EVAL)
    samples = [s for f in data_files for s in f.samples]
    train_texts = {s.text.strip() for s in samples}
    leaked = [s.id for s in eval_file.samples if s.text.strip() in train_texts]
    if leaked:
        raise DataError(
            [
                DataProblem(
                    eval_file.path,
                    0,
                    "text",
                    f"evaluation request {i} is also in the "
                    "training data; the yardstick must stay unseen",
                )
                for i in leaked
            ]
        )
    if len(samples) < MIN_EXAMPLES:
        # Such a model could never be made current, and cross-validation fails on fewer
        # requests than folds: say so before training, not with scikit-learn's words after.
        raise DataError(
            [
                DataProblem(
                    ", ".join(f.path for f in data_files),
                    0,
                    None,
                    f"{too_thin(samples)}; nothing was trained",
                )
            ]
        )

    registry = Registry(model_dir)
    check_writable(registry)  # a wrong --model-dir was found only after the whole training

    estimator, fit_report = fit_estimator(samples, config, progress)
    git_sha, dirty = git_revision()
    version_id = registry.new_version_id(git_sha)

    progress("evaluation", 0, 1)
    model = TriageModel(estimator, version_id)
    y_true, probabilities = scored(model, eval_file.samples)
    metrics = metrics_of(model, eval_file.samples, y_true, probabilities)
    progress("evaluation", 1, 1)

    manifest = {
        "data": [f.summary() for f in data_files],
        "eval_data": eval_file.summary(),
        "config": config.to_dict(),
        "metrics": metrics,
        "cv_thresholds": fit_report.thresholds,
        "novelty_threshold": estimator.index.novelty_threshold,
        "concepts": fit_report.concepts,
        "unread_requests": fit_report.unread,
        "code": {"git_sha": git_sha, "dirty": dirty},
        "libs": library_versions(),
    }

    def write_extras(folder: Path) -> None:
        progress("report", 0, 1)
        write_report(
            folder / "report",
            y_true,
            probabilities,
            estimator.thresholds,
            metrics,
            f"Model {version_id} on {Path(eval_file.path).name}",
        )
        progress("report", 1, 1)

    path = registry.save(version_id, estimator, manifest, write_extras)
    held_back = too_thin(samples) if promote else None
    promoted = promote and held_back is None
    if promoted:
        registry.promote(version_id)
    seconds = time.perf_counter() - started
    return TrainResult(version_id, path, metrics, promoted, seconds, fit_report.unread, held_back)
