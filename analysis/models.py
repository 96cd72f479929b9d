"""Registry versions for analysis: list them, load any one, find its report pictures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from model import Registry, TriageModel
from model.registry import default_model_dir


def load_version(model_dir: Path | str | None = None, version: str | None = None) -> TriageModel:
    """Load one version of a registry (default: its current one).

    ``model_dir`` defaults to ``TRIAGE_MODEL_DIR``, else ``var/models``.

    >>> model = load_version("var/models", "20250114-103000-ab12cd3")  # doctest: +SKIP
    >>> model.suggest("Bitte 2FA für das Admin-Portal").labels         # doctest: +SKIP
    ['security', 'broad_value']
    """
    return Registry(model_dir or default_model_dir()).load(version)


def list_versions(model_dir: Path | str | None = None) -> pd.DataFrame:
    """One row per version, oldest first: creation time, current, data sizes, quality; a
    version whose manifest cannot be read has only ``error`` (why) filled in.

    >>> list_versions("var/models")[["created_at", "current", "macro_f1"]]  # doctest: +SKIP
    """
    entries, _ = Registry(model_dir or default_model_dir()).catalogue()
    rows = []
    for entry in entries:
        if entry.manifest is None:
            rows.append({"version": entry.version, "current": entry.current, "error": entry.error})
            continue
        manifest = entry.manifest
        metrics = manifest.get("metrics") or {}
        rows.append(
            {
                "version": entry.version,
                "created_at": pd.Timestamp(manifest.get("created_at")),
                "current": entry.current,
                "n_train": sum(d.get("n", 0) for d in manifest.get("data") or []),
                "macro_f1": metrics.get("macro_f1"),
                **{
                    f"f1_{label}": values.get("f1")
                    for label, values in (metrics.get("per_label") or {}).items()
                },
            }
        )
    if not rows:
        return pd.DataFrame(columns=["created_at", "current", "n_train", "macro_f1"]).rename_axis(
            "version"
        )
    return pd.DataFrame(rows).set_index("version")


def report_pictures(model_dir: Path | str | None, version: str) -> list[Path]:
    """The PNG pictures training wrote into a version's ``report/`` folder.

    >>> report_pictures("var/models", model.version)  # doctest: +SKIP
    [PosixPath('var/models/versions/…/report/confusion_broad_value.png'), …]
    """
    folder = Registry(model_dir or default_model_dir()).version_dir(version) / "report"
    return sorted(folder.glob("*.png"))
