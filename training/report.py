"""Metrics report of a model version: JSON, Markdown and pictures (PNG)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_curve

from model.estimator import LABELS


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, label: str, path: Path) -> None:
    matrix = confusion_matrix(y_true, y_pred, labels=[0, 1])
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=110)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        colour = "white" if value > matrix.max() / 2 else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=13)
    ax.set_xticks([0, 1], ["no", "yes"])
    ax.set_yticks([0, 1], ["no", "yes"])
    ax.set_xlabel("suggested")
    ax.set_ylabel("true")
    ax.set_title(label, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_pr_curve(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, label: str, path: Path
) -> None:
    fig, ax = plt.subplots(figsize=(4.2, 3.4), dpi=110)
    if y_true.min() != y_true.max():
        precision, recall, cut = precision_recall_curve(y_true, scores)
        ax.plot(recall, precision, color="#2563eb", lw=2)
        at = np.searchsorted(cut, threshold)
        if at < len(cut):
            ax.plot(
                recall[at], precision[at], "o", color="#dc2626", label=f"threshold {threshold:.2f}"
            )
            ax.legend(loc="lower left", fontsize=8)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"{label}: precision-recall", fontsize=11)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_f1_bars(metrics: dict[str, Any], path: Path) -> None:
    per_label = metrics["per_label"]
    names = list(per_label) + [f"macro {lang}" for lang in metrics.get("per_language", {})]
    values = [per_label[label]["f1"] for label in per_label] + [
        v["macro_f1"] for v in metrics.get("per_language", {}).values()
    ]
    fig, ax = plt.subplots(figsize=(6, 2.8), dpi=110)
    bars = ax.barh(names, values, color="#60a5fa")
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("F1")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(
    folder: Path,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    thresholds: dict[str, float],
    metrics: dict[str, Any],
    title: str,
) -> list[str]:
    """Write ``metrics.json``, ``report.md`` and PNG pictures into ``folder``; returns names."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    lines = [
        f"# {title}",
        "",
        f"Macro F1 {metrics['macro_f1']:.3f}, micro F1 "
        f"{metrics['micro_f1']:.3f}, subset accuracy {metrics['subset_accuracy']:.3f} "
        f"on {metrics['n']} requests.",
        "",
        "| label | precision | recall | F1 | support | threshold |",
        "|---|---|---|---|---|---|",
    ]
    for j, label in enumerate(LABELS):
        m = metrics["per_label"][label]
        lines.append(
            f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} "
            f"| {m['support']} | {thresholds[label]:.2f} |"
        )
        y_pred = (probabilities[:, j] >= thresholds[label]).astype(int)
        for kind, draw in (
            (
                "confusion",
                lambda p, j=j, y_pred=y_pred, label=label: plot_confusion(
                    y_true[:, j], y_pred, label, p
                ),
            ),
            (
                "pr",
                lambda p, j=j, label=label: plot_pr_curve(
                    y_true[:, j], probabilities[:, j], thresholds[label], label, p
                ),
            ),
        ):
            name = f"{kind}_{label}.png"
            draw(folder / name)
            files.append(name)
    plot_f1_bars(metrics, folder / "f1.png")
    files.append("f1.png")
    lines += ["", "| language | n | macro F1 |", "|---|---|---|"]
    for lang, m in metrics.get("per_language", {}).items():
        lines.append(f"| {lang} | {m['n']} | {m['macro_f1']:.3f} |")
    lines += ["", "![F1 per label and language](f1.png)", ""]
    for label in LABELS:
        lines.append(f"![{label} confusion](confusion_{label}.png) ![{label} PR](pr_{label}.png)")
    (folder / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return [*files, "report.md", "metrics.json"]


# ---------------------------------------------------------------- retraining run reports


def _compare_bars(report: dict[str, Any], path: Path) -> None:
    metrics = report["metrics"]
    names = [*LABELS, "macro"]
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=110)
    width = 0.38
    x = np.arange(len(names))
    for k, (who, colour) in enumerate((("champion", "#94a3b8"), ("challenger", "#2563eb"))):
        if who not in metrics:
            continue
        m = metrics[who]["yardstick"]
        values = [m["per_label"][label]["f1"] for label in LABELS] + [m["macro_f1"]]
        bars = ax.bar(x + (k - 0.5) * width, values, width, label=who, color=colour)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("F1 on the yardstick")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("champion vs challenger", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _mix_bars(report: dict[str, Any], path: Path) -> None:
    old, new = report["data"]["old"], report["data"]["new"]
    names = [*LABELS, "no label", "de", "en"]

    def shares(mix: dict[str, Any]) -> list[float]:
        n = max(mix["n"], 1)
        counts = [mix["per_label"][label] for label in LABELS] + [mix["no_label"]]
        return [c / n for c in [*counts, mix["per_lang"]["de"], mix["per_lang"]["en"]]]

    fig, ax = plt.subplots(figsize=(6.4, 3.0), dpi=110)
    x = np.arange(len(names))
    ax.bar(x - 0.2, shares(old), 0.4, label=f"samples (n={old['n']})", color="#94a3b8")
    ax.bar(x + 0.2, shares(new), 0.4, label=f"new reviews (n={new['n']})", color="#f59e0b")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("share of requests")
    ax.legend(fontsize=8)
    ax.set_title("label and language mix: new data vs old", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _agreement_line(report: dict[str, Any], path: Path) -> None:
    weekly = report["reviews"]["weekly_agreement"]
    fig, ax = plt.subplots(figsize=(6.4, 2.8), dpi=110)
    if weekly:
        weeks = list(weekly)[-12:]
        ax.plot(weeks, [weekly[w] for w in weeks], marker="o", color="#16a34a")
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    else:
        ax.text(0.5, 0.5, "no reviews yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accepted unchanged")
    ax.set_title("reviewers' agreement with suggestions per week", fontsize=11)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_run_pictures(report: dict[str, Any], folder: Path) -> list[str]:
    """PNG pictures of a retraining run; returns their file names."""
    drawings = {
        "compare.png": _compare_bars,
        "data_mix.png": _mix_bars,
        "agreement.png": _agreement_line,
    }
    for name, draw in drawings.items():
        draw(report, folder / name)
    return list(drawings)


def render_run_markdown(report: dict[str, Any], pictures: list[str]) -> str:
    verdict = {
        "promoted": "promoted the challenger",
        "kept": "kept the champion",
        "dry_run": "dry run: nothing promoted",
    }[report["status"]]
    lines = [
        f"# Retraining run {report['run_id']}: {verdict}",
        "",
        f"Champion `{report['champion_version']}`, challenger `{report['challenger_version']}`.",
        "",
    ]
    if report["reasons"]:
        lines += ["The gate held the challenger back:", ""]
        lines += [f"- {reason}" for reason in report["reasons"]] + [""]
    elif report["status"] != "promoted":
        lines += ["The challenger passed the gate.", ""]
    for note in report.get("notes", []):  # e.g. why the holdout was left out of the yardstick
        lines += [f"Note: {note}.", ""]
    lines += [
        "| model | macro F1 | security recall | " + " | ".join(LABELS) + " |",
        "|---|---|---|" + "---|" * len(LABELS),
    ]
    for who in ("champion", "challenger"):
        if who in report["metrics"]:
            m = report["metrics"][who]["yardstick"]
            per = " | ".join(f"{m['per_label'][label]['f1']:.3f}" for label in LABELS)
            lines.append(
                f"| {who} | {m['macro_f1']:.3f} | "
                f"{m['per_label']['security']['recall']:.3f} | {per} |"
            )
    reviews = report["reviews"]
    data = report["data"]
    lines += [
        "",
        f"Reviews: {reviews['reviews']} ({reviews['accepted_unchanged']} accepted "
        f"unchanged; blind: {reviews['blind_reviews']}, agreement "
        f"{reviews['blind_agreement_rate']}). Trained on {data['train']['n']} requests "
        f"({data.get('training_reviews', 0)} from reviews); yardstick "
        f"{data['yardstick']['n']} (holdout {data.get('holdout', 0)}).",
        "",
    ]
    lines += [f"![{name}]({name})" for name in pictures]
    return "\n".join(lines) + "\n"
