"""Registry: atomic versions and pointer, checksum refusal, pruning."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model import ArtifactError, Registry, TriageModel, load_model
from model.estimator import TriageEstimator
from model.registry import time_stamp

TEXTS = ["Bitte 2FA für das Admin-Portal", "How do I change the hold music?", ""]


def _save(registry: Registry, estimator: TriageEstimator, version: str) -> Path:
    manifest = {"libs": {}, "metrics": {"macro_f1": 0.5}}
    return registry.save(version, estimator, manifest)


def test_save_then_load_gives_identical_scores(tmp_path: Path, small_estimator) -> None:
    registry = Registry(tmp_path)
    _save(registry, small_estimator, "20260101-000000-aaaaaaa")
    registry.promote("20260101-000000-aaaaaaa")
    loaded = load_model(tmp_path)

    original = TriageModel(small_estimator, "mem")
    np.testing.assert_array_equal(loaded.score_matrix(TEXTS), original.score_matrix(TEXTS))
    assert loaded.version == "20260101-000000-aaaaaaa"


def test_load_model_accepts_a_version_folder(tmp_path: Path, small_estimator) -> None:
    folder = _save(Registry(tmp_path), small_estimator, "20260101-000000-aaaaaaa")
    assert load_model(folder).version == "20260101-000000-aaaaaaa"


def test_tampered_artifact_is_refused_and_current_is_unchanged(
    tmp_path: Path, small_estimator
) -> None:
    registry = Registry(tmp_path)
    _save(registry, small_estimator, "20260101-000000-aaaaaaa")
    registry.promote("20260101-000000-aaaaaaa")
    bad = _save(registry, small_estimator, "20260102-000000-bbbbbbb")
    with (bad / "model.joblib").open("ab") as handle:
        handle.write(b"\x00evil")
    with pytest.raises(ArtifactError, match="does not match the manifest"):
        registry.load("20260102-000000-bbbbbbb")
    with pytest.raises(ArtifactError, match="does not match the manifest"):
        registry.promote("20260102-000000-bbbbbbb")
    assert registry.current() == "20260101-000000-aaaaaaa"
    assert registry.load().version == "20260101-000000-aaaaaaa"


def test_corrupt_manifest_and_unknown_format_are_refused(tmp_path: Path, small_estimator) -> None:
    registry = Registry(tmp_path)
    folder = _save(registry, small_estimator, "20260101-000000-aaaaaaa")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(ArtifactError, match="format 99"):
        registry.load("20260101-000000-aaaaaaa")
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        registry.load("20260101-000000-aaaaaaa")
    # Only the artifact is checksummed: an edited manifest is caught by its fields' types.
    for edit, reason in (
        ({"created_at": 12345}, "field 'created_at' is int, expected str"),
        ({"libs": {"scikit-learn": None}}, "field 'libs' must map"),
        ({"thresholds": {"security": "low"}}, "field 'thresholds' must map"),
        ({"artifact": "../other/model.joblib"}, "field 'artifact' must name a file"),
        ({"labels": "security"}, "field 'labels' is str, expected list"),
    ):
        (folder / "manifest.json").write_text(json.dumps({**manifest, **edit}))
        with pytest.raises(ArtifactError, match=reason):
            registry.load("20260101-000000-aaaaaaa")
    (folder / "manifest.json").write_text(json.dumps([manifest]))
    with pytest.raises(ArtifactError, match="a JSON object expected"):
        registry.manifest("20260101-000000-aaaaaaa")


def test_an_unreadable_current_pointer_is_an_artifact_error(
    tmp_path: Path, small_estimator
) -> None:
    registry = Registry(tmp_path)
    _save(registry, small_estimator, "20260101-000000-aaaaaaa")
    (tmp_path / "CURRENT").write_bytes(b"\xff\xfe x")
    with pytest.raises(ArtifactError, match="not UTF-8"):
        registry.current()


def test_a_version_of_another_format_is_outdated(tmp_path: Path, small_estimator) -> None:
    registry = Registry(tmp_path)
    folder = _save(registry, small_estimator, "20260101-000000-aaaaaaa")
    assert not registry.outdated("20260101-000000-aaaaaaa")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format": 2}))
    assert registry.outdated("20260101-000000-aaaaaaa")
    assert not registry.outdated("20990101-000000-missing")  # loading it says why


def test_library_mismatch_is_refused_unless_allowed(tmp_path: Path, small_estimator) -> None:
    registry = Registry(tmp_path)
    registry.save("20260101-000000-aaaaaaa", small_estimator, {"libs": {"scikit-learn": "0.1"}})
    with pytest.raises(ArtifactError, match=r"scikit-learn 0\.1"):
        registry.load("20260101-000000-aaaaaaa")
    registry.load("20260101-000000-aaaaaaa", allow_library_mismatch=True)


def test_crash_while_saving_leaves_no_version(tmp_path: Path, small_estimator) -> None:
    registry = Registry(tmp_path)

    def crash(folder: Path) -> None:
        raise KeyboardInterrupt("power cut while writing the report")

    with pytest.raises(KeyboardInterrupt):
        registry.save("20260101-000000-aaaaaaa", small_estimator, {"libs": {}}, crash)
    assert registry.list_versions() == []
    assert list(registry.versions_dir.iterdir()) == []


def test_promote_replaces_the_pointer_in_one_step(tmp_path: Path, small_estimator) -> None:
    registry = Registry(tmp_path)
    for version in ("20260101-000000-aaaaaaa", "20260102-000000-bbbbbbb"):
        _save(registry, small_estimator, version)
        registry.promote(version)
        assert (tmp_path / "CURRENT").read_text() == version + "\n"
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert hidden == [".promote.lock"]  # the lock every promotion takes; no temporary file


def test_missing_version_and_empty_registry_explain_themselves(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="train one with `triage train`"):
        Registry(tmp_path).load()
    with pytest.raises(ArtifactError, match="no model version 'nope'"):
        Registry(tmp_path).load("nope")


def test_prune_keeps_newest_and_current(tmp_path: Path, small_estimator) -> None:
    registry = Registry(tmp_path)
    versions = [f"2026010{i}-000000-aaaaaaa" for i in range(1, 5)]
    for version in versions:
        _save(registry, small_estimator, version)
    registry.promote(versions[0])
    # What a killed save or prune leaves behind goes too, once it is an hour old (a save
    # running now stages in a fresh folder): it holds a whole model and training snippets.
    import os
    import time

    stale = registry.versions_dir / ".tmp-20260101-000000-x-abc"
    fresh = registry.versions_dir / ".tmp-20260102-000000-x-def"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "model.joblib").write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    removed = registry.prune(keep=2)
    assert removed == versions[1:2]
    assert registry.list_versions() == [versions[0], *versions[2:]]
    assert not stale.exists() and fresh.exists()


def test_prune_counts_only_versions_that_were_served(tmp_path: Path, small_estimator) -> None:
    """Rejected challengers must not crowd out the good versions to roll back to."""
    registry = Registry(tmp_path)
    before_the_record = "20200101-000000-aaaaaaa"  # made before promotions were recorded
    later = [f"20990101-00000{i}-aaaaaaa" for i in range(1, 6)]  # ids after every promotion
    for version in (before_the_record, *later):
        _save(registry, small_estimator, version)
    served_first, held_back, champion, rejected, rejected_too = later
    registry.promote(served_first)
    registry.promote(champion)
    with (tmp_path / "PROMOTIONS").open("a") as history:
        history.write("2026112")  # a line a crash cut short is skipped
    assert [v for _, v in registry.promotions()] == [served_first, champion]
    assert registry.served() == {before_the_record, served_first, champion}

    assert registry.prune(keep=3) == [held_back, rejected, rejected_too]
    assert registry.list_versions() == [before_the_record, served_first, champion]
    registry.promote(served_first)  # a rollback is a promotion too
    assert [v for _, v in registry.promotions()] == [served_first, champion, served_first]
    assert registry.prune(keep=1) == [before_the_record]
    assert registry.list_versions() == [served_first, champion]


def test_catalogue_lists_every_version_with_its_manifest_or_why_not(
    tmp_path: Path, small_estimator
) -> None:
    registry = Registry(tmp_path)
    _save(registry, small_estimator, "20260101-000000-aaaaaaa")
    damaged = _save(registry, small_estimator, "20260102-000000-bbbbbbb")
    registry.promote("20260101-000000-aaaaaaa")
    (damaged / "manifest.json").write_text("{not json")

    entries, pointer_error = registry.catalogue()
    assert pointer_error is None
    assert [(e.version, e.current) for e in entries] == [
        ("20260101-000000-aaaaaaa", True),
        ("20260102-000000-bbbbbbb", False),
    ]
    assert entries[0].manifest["metrics"] == {"macro_f1": 0.5} and entries[0].error is None
    assert entries[1].manifest is None and "not valid JSON" in entries[1].error

    (tmp_path / "CURRENT").write_bytes(b"\xff\xfe x")  # a damaged pointer hides no version
    entries, pointer_error = registry.catalogue()
    assert "not UTF-8" in pointer_error
    assert [e.current for e in entries] == [False, False]


def test_time_stamps_begin_version_ids(tmp_path: Path) -> None:
    at = datetime(2026, 1, 14, 10, 30, 5, tzinfo=UTC)
    assert time_stamp(at) == "20260114-103005"
    assert Registry(tmp_path).new_version_id("abc1234", now=at) == "20260114-103005-abc1234"


def test_version_ids_sort_by_time_and_never_collide(tmp_path: Path, small_estimator) -> None:
    registry = Registry(tmp_path)
    first = registry.new_version_id("abc1234")
    _save(registry, small_estimator, first)
    second = registry.new_version_id("abc1234")
    assert second != first
    assert first.endswith("-abc1234")


def test_a_model_of_other_labels_is_refused(tmp_path: Path, small_estimator) -> None:
    # The service, evaluation and reviews work with LABELS in that order; a model of two
    # labels, or of the three in another order, would be served and scored wrongly.
    from dataclasses import replace

    registry = Registry(tmp_path)
    reordered = replace(
        small_estimator, scorers=dict(reversed(list(small_estimator.scorers.items())))
    )
    registry.save("20260101-000000-aaaaaaa", reordered, {"libs": {}})
    with pytest.raises(ArtifactError, match="this code works with msp_configurable"):
        registry.load("20260101-000000-aaaaaaa")


def test_registry_files_that_cannot_be_read_are_artifact_errors(
    tmp_path: Path, small_estimator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not tracebacks: `triage models list`/`show` and the service print these messages."""
    registry = Registry(tmp_path)
    folder = _save(registry, small_estimator, "20260101-000000-aaaaaaa")
    version = folder.name

    (tmp_path / "CURRENT").mkdir()
    with pytest.raises(ArtifactError, match=r"CURRENT: cannot be read \(Is a directory\)"):
        registry.current()
    (tmp_path / "CURRENT").rmdir()

    (folder / "manifest.json").rename(folder / "kept.json")
    (folder / "manifest.json").mkdir()
    with pytest.raises(ArtifactError, match=r"manifest.json: cannot be read \(Is a directory\)"):
        registry.manifest(version)
    (folder / "manifest.json").rmdir()
    (folder / "kept.json").rename(folder / "manifest.json")

    (folder / "model.joblib").rename(folder / "kept.joblib")
    (folder / "model.joblib").mkdir()
    with pytest.raises(ArtifactError, match=r"model.joblib: cannot be read \(Is a directory\)"):
        registry.load(version)
    (folder / "model.joblib").rmdir()
    (folder / "kept.joblib").rename(folder / "model.joblib")

    # Tests may run as root, whom permissions do not stop: deny the way another account is.
    denied = {tmp_path / "CURRENT", folder / "manifest.json", registry.versions_dir}
    read_text, iterdir = Path.read_text, Path.iterdir

    def read_denied(path: Path, *args: Any, **kwargs: Any) -> str:
        if path in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)

    def list_denied(path: Path) -> Iterator[Path]:
        if path in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return iterdir(path)

    monkeypatch.setattr(Path, "read_text", read_denied)
    monkeypatch.setattr(Path, "iterdir", list_denied)
    (tmp_path / "CURRENT").write_text(version + "\n")
    with pytest.raises(ArtifactError, match=r"CURRENT: cannot be read \(Permission denied\)"):
        registry.current()
    with pytest.raises(ArtifactError, match=r"manifest.json: cannot be read \(Permission denied"):
        registry.manifest(version)
    with pytest.raises(ArtifactError, match=r"versions: cannot be listed \(Permission denied"):
        registry.list_versions()


def test_a_manifest_nested_too_deeply_is_an_artifact_error(tmp_path: Path, small_estimator) -> None:
    registry = Registry(tmp_path)
    folder = _save(registry, small_estimator, "20260101-000000-aaaaaaa")
    (folder / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ArtifactError, match="nested too deeply"):
        registry.manifest(folder.name)
    (folder / "manifest.json").write_text('{"format": ' + "9" * 5000 + "}")
    with pytest.raises(ArtifactError, match="not valid JSON"):  # Python's int digit limit
        registry.manifest(folder.name)


def test_catalogue_lists_the_others_when_one_cannot_be_read(
    tmp_path: Path, small_estimator, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(tmp_path)
    versions = ["20260101-000000-aaaaaaa", "20260102-000000-bbbbbbb", "20260103-000000-ccccccc"]
    for version in versions:
        _save(registry, small_estimator, version)
    registry.promote(versions[0])
    (registry.version_dir(versions[1]) / "manifest.json").write_text("[" * 100_000)
    denied = registry.version_dir(versions[2])  # another account's folder, mode 0700
    is_file, exists, read_text = Path.is_file, Path.exists, Path.read_text

    def deny(original: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(path: Path, *args: Any, **kwargs: Any) -> Any:
            if path.parent == denied:
                raise PermissionError(13, "Permission denied", str(path))
            return original(path, *args, **kwargs)

        return guarded

    for name, original in (("is_file", is_file), ("exists", exists), ("read_text", read_text)):
        monkeypatch.setattr(Path, name, deny(original))

    entries, pointer_error = registry.catalogue()
    assert pointer_error is None
    assert [(e.version, e.current) for e in entries] == [
        (versions[0], True),
        (versions[1], False),
        (versions[2], False),
    ]
    assert entries[0].manifest is not None and entries[0].error is None
    assert entries[1].manifest is None and "nested too deeply" in entries[1].error
    assert entries[2].manifest is None and "Permission denied" in entries[2].error


def test_catalogue_says_when_current_names_no_version_here(tmp_path: Path, small_estimator) -> None:
    registry = Registry(tmp_path)
    _save(registry, small_estimator, "20260101-000000-aaaaaaa")
    registry.promote("20260101-000000-aaaaaaa")
    (tmp_path / "CURRENT").write_text("20251224-000000-pruned0\n")  # a hand edit, a bad sync

    entries, pointer_error = registry.catalogue()
    assert [e.current for e in entries] == [False]
    assert pointer_error is not None
    assert "names 20251224-000000-pruned0, which is not a version here" in pointer_error
    assert "triage models use VERSION" in pointer_error
