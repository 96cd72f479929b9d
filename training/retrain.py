"""Nightly retraining: a challenger trained on samples plus reviewers' decisions, judged
against the champion on one frozen yardstick, promoted only when it is not worse.

The yardstick is ``data/samples/eval.jsonl`` plus a reviewer holdout: reviewed texts chosen by
a hash of their normalised wording (so the same wording is always in or always out, whichever
request brings it), never trained on; reviews of texts in the training files are never held out.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.estimator import LABELS
from model.predictor import TriageModel
from model.registry import ArtifactError, CurrentChanged, Registry, make_staging_dir, time_stamp
from model.suggestion import reviewed_sample_id
from training.config import TrainConfig, load_config
from training.data import LANGS, Sample, label_mix, load_many, load_samples
from training.evaluate import evaluate_model
from training.pipeline import Progress, _no_progress, fit_estimator, group_of
from training.report import draw_run_pictures, render_run_markdown
from training.train import (
    DEFAULT_EVAL,
    DEFAULT_TRAIN,
    check_writable,
    git_revision,
    library_versions,
    too_thin,
)


class RetrainLocked(RuntimeError):
    """Another retraining run holds the lock."""


@dataclass(frozen=True)
class ReviewedRequest:
    """A human decision on a stored request (built by the caller from the request store)."""

    id: str
    text: str
    labels: tuple[str, ...]
    lang: str
    suggested_labels: tuple[str, ...]
    blind: bool
    reviewed_at: str  # ISO-8601


# Metrics are rounded to 4 decimals, so a drop of exactly the tolerance is common, and float
# subtraction overshoots it (0.93 - 0.92 == 0.010000000000000009): allow for that much.
_FLOAT_SLACK = 1e-9


def _number(metrics: dict[str, Any], path: tuple[str, ...]) -> float | str:
    """The finite number at ``path`` in ``metrics``, or what it is instead ("missing", "nan")."""
    value: Any = metrics
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return "missing"
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"not a number ({value!r})"
    if not math.isfinite(value):
        return str(value)
    return float(value)


@dataclass(frozen=True)
class Gate:
    """Rules a challenger must pass to replace the champion.

    A drop equal to a tolerance passes. A metric that is missing or not a finite number, on
    either side, holds the challenger back: what cannot be compared is not shown to be as good.
    """

    macro_f1_tolerance: float = 0.01  # may be at most this much below the champion
    label_f1_tolerance: float = 0.03  # no label's F1 may drop by more
    security_recall_tolerance: float = 0.0  # security recall must not drop

    def check(self, champion: dict[str, Any], challenger: dict[str, Any]) -> list[str]:
        """Reasons that hold the challenger back; empty when it may be promoted."""
        reasons: list[str] = []

        def fell(name: str, path: tuple[str, ...], tolerance: float) -> tuple[float, float] | None:
            """(champion's, challenger's) value when it fell by more than ``tolerance``."""
            before, after = _number(champion, path), _number(challenger, path)
            if isinstance(before, str) or isinstance(after, str):
                unusable = [
                    f"the {who}'s {name} is {value}"
                    for who, value in (("champion", before), ("challenger", after))
                    if isinstance(value, str)
                ]
                reasons.append(f"{' and '.join(unusable)}, so the two cannot be compared")
                return None
            return (before, after) if before - after > tolerance + _FLOAT_SLACK else None

        if drop := fell("macro F1", ("macro_f1",), self.macro_f1_tolerance):
            before, after = drop
            reasons.append(
                f"macro F1 {after:.4f} is {before - after:.4f} below the champion's "
                f"{before:.4f} (tolerance {self.macro_f1_tolerance})"
            )
        recall = ("per_label", "security", "recall")
        if drop := fell("security recall", recall, self.security_recall_tolerance):
            reasons.append(f"security recall drops from {drop[0]:.4f} to {drop[1]:.4f}")
        for label in LABELS:
            if drop := fell(f"{label} F1", ("per_label", label, "f1"), self.label_f1_tolerance):
                reasons.append(
                    f"{label} F1 drops from {drop[0]:.4f} to {drop[1]:.4f} "
                    f"(tolerance {self.label_f1_tolerance})"
                )
        return reasons


@dataclass
class RetrainResult:
    status: str  # "promoted", "kept" or "dry_run"
    run_id: str
    challenger_version: str
    champion_version: str | None
    reasons: list[str]
    report_dir: Path
    report: dict[str, Any] = field(repr=False)


def in_holdout(text: str, share: float) -> bool:
    """Whether a reviewed text belongs to the reviewer holdout, decided by its wording alone.

    The hash is of the normalised text that duplicates are merged on, not of a request id: the
    same wording falls on the same side every night, whichever request brings it, so a text an
    earlier night trained on never moves into the holdout (as long as the share does not grow).
    A larger share only adds texts: those below the old share stay in.
    """
    digest = hashlib.sha256(f"holdout:{_key(text)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def collect(
    base: list[Sample], reviewed: list[ReviewedRequest], holdout_share: float
) -> tuple[list[Sample], list[Sample], dict[str, int]]:
    """Training samples and reviewer holdout; reviewed decisions override the samples.

    The latest review of a request wins; requests with the same text are merged (the latest
    decision wins there too). Requests in neither German nor English are left out.

    The holdout holds only texts no model has been trained on: membership goes by the text
    (``in_holdout``), and a review of a text in ``base`` always trains: the champion learnt
    that text from the training files (with the old labels, if the review changed them).

    A review replaces the base sample with its text, and its labels also replace those of the
    sample's translations (and, for a reviewed translation, of its original and the other
    translations): a request and its translations say the same thing and share their labels by
    design, so the old labels must not go on training through the other language. They keep
    their ids, languages and ``source_id``. When several texts of one such group are reviewed,
    each trains with its own review, and the group's unreviewed texts take the latest of them.
    """
    stats: Counter[str] = Counter()
    latest: dict[str, ReviewedRequest] = {}
    for review in sorted(reviewed, key=lambda r: r.reviewed_at):
        if review.lang not in LANGS:
            stats["skipped_language"] += 1
            continue
        if not review.text.strip():
            stats["skipped_empty"] += 1
            continue
        key = _key(review.text)
        if key in latest:
            stats["merged_duplicates"] += 1
        latest[key] = review
    base_keys = [_key(s.text) for s in base]  # each text normalised once
    in_base = set(base_keys)
    holdout, fresh = [], []
    for key, review in latest.items():
        sample = Sample(
            reviewed_sample_id(review.id),
            review.text,
            review.labels,
            review.lang,
            {"source": "review"},
        )
        held = key not in in_base and in_holdout(review.text, holdout_share)
        (holdout if held else fresh).append(sample)
    group_review: dict[str, ReviewedRequest] = {}  # translation group -> its latest review
    for sample, key in zip(base, base_keys, strict=True):
        review = latest.get(key)
        if review is None:
            continue
        group = group_of(sample)
        if group not in group_review or review.reviewed_at >= group_review[group].reviewed_at:
            group_review[group] = review
    kept_base = []
    for sample, key in zip(base, base_keys, strict=True):
        if key in latest:
            stats["samples_overridden"] += 1
            continue
        review = group_review.get(group_of(sample))
        if review and set(review.labels) != set(sample.labels):
            labels = tuple(label for label in LABELS if label in review.labels)
            sample = replace(sample, labels=labels)
            stats["translations_relabelled"] += 1
        kept_base.append(sample)
    stats.update(reviewed=len(reviewed), training_reviews=len(fresh), holdout=len(holdout))
    return kept_base + fresh, holdout, dict(stats)


# The holdout rule a retrained version's manifest records: "text" is ``in_holdout`` by wording.
# (Versions retrained before it record none: their holdout went by request id.)
HOLDOUT_RULE = "text"


def holdout_unseen(manifest: dict[str, Any], share: float) -> bool:
    """Whether the version with ``manifest`` was trained on no text of today's holdout.

    A version made by ``triage train`` trained on data files alone, whose texts never go into
    the holdout. A retrained one did so if it held out by text with at least today's share;
    one that held out by request id, or a smaller share, may have trained on such texts.
    """
    if "retrain_run" not in manifest:
        return True
    recorded = manifest.get("holdout")
    if not isinstance(recorded, dict) or recorded.get("rule") != HOLDOUT_RULE:
        return False
    recorded_share = recorded.get("share")
    return isinstance(recorded_share, int | float) and recorded_share >= share


def review_statistics(reviewed: list[ReviewedRequest]) -> dict[str, Any]:
    """How reviewers agreed with suggestions: overall, blind, and per ISO week."""
    weeks: dict[str, list[int]] = {}
    agreed = blind = blind_agreed = 0
    for review in reviewed:
        same = set(review.labels) == set(review.suggested_labels)
        agreed += same
        if review.blind:
            blind += 1
            blind_agreed += same
        year, week, _ = datetime.fromisoformat(review.reviewed_at).isocalendar()
        weeks.setdefault(f"{year}-W{week:02d}", []).append(same)
    return {
        "reviews": len(reviewed),
        "accepted_unchanged": agreed,
        "agreement_rate": round(agreed / len(reviewed), 4) if reviewed else None,
        "blind_reviews": blind,
        "blind_agreement_rate": round(blind_agreed / blind, 4) if blind else None,
        "weekly_agreement": {week: round(sum(v) / len(v), 4) for week, v in sorted(weeks.items())},
    }


@contextlib.contextmanager
def retrain_lock(root: Path) -> Iterator[None]:
    """Exclusive per registry; a second concurrent run fails at once with ``RetrainLocked``."""
    root.mkdir(parents=True, exist_ok=True)
    handle = (root / ".retrain.lock").open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetrainLocked(
                f"another retraining run holds {root / '.retrain.lock'}; not starting"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def _metrics(model: TriageModel, samples: list[Sample]) -> dict[str, Any]:
    return evaluate_model(model, samples) if samples else {}


def retrain(
    reviewed: list[ReviewedRequest] | Callable[[], list[ReviewedRequest]],
    model_dir: Path | None = None,
    data_paths: list[Path] | None = None,
    eval_path: Path | None = None,
    config: TrainConfig | None = None,
    gate: Gate | None = None,
    holdout_share: float = 0.2,
    dry_run: bool = False,
    progress: Progress = _no_progress,
) -> RetrainResult:
    """Train a challenger, compare it with the champion, promote it only if it passes.

    ``reviewed`` may be a function that reads the reviews: it is then called under the lock,
    so a second concurrent run is refused before it reads anything.
    """
    registry = Registry(model_dir)
    if not registry.root.is_dir():
        # A mistyped --model-dir or TRIAGE_MODEL_DIR would otherwise start a registry of its
        # own, promote into it and exit 0, while the service goes on serving the old model.
        raise ArtifactError(
            f"no model registry at {registry.root} (a mistyped --model-dir or "
            "TRIAGE_MODEL_DIR?); train a first model there with `triage train`, or create "
            "the directory to let retraining make the first one"
        )
    config = config or load_config()
    gate = gate or Gate()
    with retrain_lock(registry.root):
        started = time.perf_counter()
        if callable(reviewed):
            reviewed = reviewed()
        base_files = load_many(data_paths or [DEFAULT_TRAIN])
        eval_file = load_samples(eval_path or DEFAULT_EVAL)
        eval_samples = eval_file.samples
        base = [s for f in base_files for s in f.samples]
        train_samples, holdout, stats = collect(base, reviewed, holdout_share)
        eval_keys = {_key(s.text) for s in eval_samples}
        train_samples = [s for s in train_samples if _key(s.text) not in eval_keys]

        champion_version = registry.current()
        champion = None
        holdout_judges = True  # whether the reviewer holdout is part of the yardstick
        notes: list[str] = []
        if champion_version is None and registry.list_versions():
            raise ArtifactError(
                f"{registry.root} holds model versions but none is current, so there is no "
                "champion to compare with; choose one with `triage models use VERSION` first"
            )
        if champion_version is not None:
            try:
                champion = registry.load(champion_version)
                trained_by = registry.manifest(champion_version)
            except ArtifactError as exc:
                raise ArtifactError(
                    f"the champion {champion_version} cannot be loaded ({exc}); fix the "
                    "registry (triage models use VERSION) before retraining"
                ) from exc
            if holdout and not holdout_unseen(trained_by, holdout_share):
                # Its training data and today's holdout may overlap; judged on it the champion
                # would look better than it is, and keep winning night after night.
                holdout_judges = False
                notes.append(
                    f"the champion {champion_version} was retrained before the reviewer "
                    f"holdout went by text, or with a holdout share below {holdout_share}, so "
                    "it may have trained on texts now held out; this run judges both models "
                    f"on {Path(eval_file.path).name} alone"
                )
        yardstick = eval_samples + (holdout if holdout_judges else [])

        check_writable(registry)  # before the hour of training, not after it
        estimator, fit_report = fit_estimator(train_samples, config, progress)
        git_sha, dirty = git_revision()
        challenger_version = registry.new_version_id(git_sha)
        challenger = TriageModel(estimator, challenger_version)

        progress("evaluation", 0, 2)
        scores = {
            "challenger": {
                "yardstick": _metrics(challenger, yardstick),
                "eval": _metrics(challenger, eval_samples),
                "holdout": _metrics(challenger, holdout),
            }
        }
        progress("evaluation", 1, 2)
        if champion is not None:
            scores["champion"] = {
                "yardstick": _metrics(champion, yardstick),
                "eval": _metrics(champion, eval_samples),
                "holdout": _metrics(champion, holdout),
            }
        progress("evaluation", 2, 2)
        reasons = (
            gate.check(scores["champion"]["yardstick"], scores["challenger"]["yardstick"])
            if champion is not None
            else []
        )
        if thin := too_thin(train_samples):  # as `triage train`: cannot be learnt
            reasons.append(thin)
        passes = not reasons
        status = "dry_run" if dry_run else ("promoted" if passes else "kept")

        run_id = f"{time_stamp()}-{challenger_version[-7:]}"
        report = {
            "run_id": run_id,
            "status": status,
            "gate_passed": passes,
            "reasons": reasons,
            "gate": asdict(gate),
            "notes": notes,
            "champion_version": champion_version,
            "challenger_version": challenger_version,
            "data": {
                **stats,
                "holdout_in_yardstick": holdout_judges,
                "old": label_mix(base),
                "new": label_mix([s for s in train_samples if s.extra.get("source") == "review"]),
                "train": label_mix(train_samples),
                "yardstick": label_mix(yardstick),
            },
            "reviews": review_statistics(reviewed),
            "metrics": scores,
            "seconds": round(time.perf_counter() - started, 1),
        }
        manifest = {
            "data": [f.summary() for f in base_files]
            + [{"path": "reviews", "n": stats.get("training_reviews", 0)}],
            "config": config.to_dict(),
            "eval_data": eval_file.summary(),
            "holdout": {"rule": HOLDOUT_RULE, "share": holdout_share},
            "metrics": scores["challenger"]["eval"],
            "yardstick_metrics": scores["challenger"]["yardstick"],
            "retrain_run": run_id,
            "concepts": fit_report.concepts,
            "unread_requests": fit_report.unread,
            "code": {"git_sha": git_sha, "dirty": dirty},
            "libs": library_versions(),
        }
        registry.save(challenger_version, estimator, manifest)

        def hold_back(now_current: str | None) -> str:
            # Someone chose another model while this one trained (`triage models use`): the
            # gate compared with a model that no longer serves, so its verdict does not hold.
            reasons.append(
                f"CURRENT changed to {now_current} during the run; the challenger was "
                f"compared with {champion_version} and is not promoted over the new choice"
            )
            report.update(status="kept", gate_passed=False, reasons=reasons)
            return "kept"

        if status == "promoted" and (now_current := registry.current()) != champion_version:
            status = hold_back(now_current)
        report_dir = write_run_report(registry, run_id, report)
        if status == "promoted":
            try:  # checked again under the promotion lock: the report took a moment to write
                registry.promote(challenger_version, expected_current=champion_version)
            except CurrentChanged as changed:
                status = hold_back(changed.current)
                report_dir = write_run_report(registry, run_id, report)
        return RetrainResult(
            status, run_id, challenger_version, champion_version, reasons, report_dir, report
        )


def write_run_report(registry: Registry, run_id: str, report: dict[str, Any]) -> Path:
    """``<registry>/runs/<run_id>/``: report.json, report.md and pictures, written atomically;
    a report of the run written before is replaced."""
    runs = registry.root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    staging = make_staging_dir(runs, f".tmp-{run_id}-")
    try:
        (staging / "report.json").write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        pictures = draw_run_pictures(report, staging)
        (staging / "report.md").write_text(render_run_markdown(report, pictures), encoding="utf-8")
        target = runs / run_id
        if target.exists():  # set aside, then removed: a folder cannot be renamed over one
            old = Path(tempfile.mkdtemp(dir=runs, prefix=f".trash-{run_id}-"))
            os.rename(target, old / run_id)
            os.rename(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
