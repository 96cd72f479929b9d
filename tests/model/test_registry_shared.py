"""A registry shared by accounts and processes: permissions, version ids, promotion races."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import joblib
import pytest

from model import ArtifactError, Registry
from model.estimator import TriageEstimator
from model.registry import CurrentChanged

REPO_ROOT = Path(__file__).resolve().parents[2]

# Run with the umask set before Python starts, as an account's login or a container sets it.
_WRITE_A_REGISTRY = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import joblib

    from model import registry as r

    root, estimator = Path(sys.argv[1]), joblib.load(sys.argv[2])
    registry = r.Registry(root)

    def report(folder: Path) -> None:  # as training writes its report into the version
        (folder / "report").mkdir()
        (folder / "report" / "report.md").write_text("# report\\n")

    version = registry.new_version_id("abc1234")
    registry.save(version, estimator, {"libs": {}}, report)
    registry.promote(version)
    (root / "runs").mkdir()
    r.make_staging_dir(root / "runs", ".tmp-run-")  # what retraining's run reports stage in
    umask = os.umask(0o077)
    os.umask(umask)
    print(json.dumps({
        "umask": umask,
        "from_proc": r._umask_from_proc(),
        "by_setting": r._umask_by_setting(),
        "at_import": r._UMASK_AT_IMPORT,
        "unchanged": os.umask(0) == umask,
    }))
    """
)


def _save(registry: Registry, estimator: TriageEstimator, version: str) -> Path:
    return registry.save(version, estimator, {"libs": {}})


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask-022", "umask-027"])
def test_files_and_folders_get_the_permissions_the_umask_gives(
    tmp_path: Path, small_estimator, umask: int
) -> None:
    """Another account (the service's, a k8s fsGroup's) can read what one account wrote."""
    joblib.dump(small_estimator, tmp_path / "estimator.joblib")
    root = tmp_path / "models"
    done = subprocess.run(
        [sys.executable, "-c", _WRITE_A_REGISTRY, str(root), str(tmp_path / "estimator.joblib")],
        cwd=REPO_ROOT,
        umask=umask,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == {
        "umask": umask,
        "from_proc": umask,  # Linux shows it without changing it
        "by_setting": umask,  # the fallback elsewhere
        "at_import": umask,
        "unchanged": True,
    }

    modes = {
        str(path.relative_to(root)): path.stat().st_mode & 0o777
        for path in [root, *root.rglob("*")]
    }
    expected_file, expected_folder = 0o666 & ~umask, 0o777 & ~umask
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (expected_folder if (root / name).is_dir() else expected_file)
    }
    assert wrong == {}
    for name in ("CURRENT", "PROMOTIONS", ".promote.lock"):
        assert name in modes
    assert len([n for n in modes if n.startswith("versions/") and n.count("/") == 1]) == 1
    assert len([n for n in modes if n.startswith("runs/.tmp-run-")]) == 1


def test_two_trainings_in_the_same_second_get_two_versions(tmp_path: Path, small_estimator) -> None:
    """Two `triage train` runs (two processes) pick ids before either saves its version."""
    at = datetime(2026, 11, 28, 6, 14, 34, tzinfo=UTC)
    first, second = Registry(tmp_path), Registry(tmp_path)
    first_id = first.new_version_id("7fca29d", now=at)
    second_id = second.new_version_id("7fca29d", now=at)
    assert (first_id, second_id) == ("20261128-061434-7fca29d", "20261128-061434-7fca29d-2")
    # Reserved ids are no versions yet: not listed, not loadable.
    assert first.list_versions() == [] and first.catalogue() == ([], None)

    _save(second, small_estimator, second_id)
    _save(first, small_estimator, first_id)
    assert first.list_versions() == [first_id, second_id]
    assert first.manifest(second_id)["version"] == second_id
    assert [p.name for p in first.versions_dir.iterdir() if p.name.startswith(".")] == []


def test_an_id_reserved_by_another_run_is_not_taken(tmp_path: Path, small_estimator) -> None:
    training = Registry(tmp_path)
    reserved = training.new_version_id("abc1234")
    with pytest.raises(ArtifactError, match="already exists"):
        _save(Registry(tmp_path), small_estimator, reserved)  # someone naming it by hand
    assert training.version_dir(reserved).is_dir()  # still reserved for its training
    _save(training, small_estimator, reserved)
    assert training.list_versions() == [reserved]


def test_a_reservation_a_killed_training_left_goes_with_prune(
    tmp_path: Path, small_estimator
) -> None:
    registry = Registry(tmp_path)
    _save(registry, small_estimator, "20260101-000000-aaaaaaa")
    registry.promote("20260101-000000-aaaaaaa")
    stale = registry.version_dir(registry.new_version_id("dead000"))
    fresh = registry.version_dir(registry.new_version_id("live000"))  # training right now
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert registry.prune(keep=1) == []
    assert not stale.exists() and fresh.is_dir()
    assert registry.list_versions() == ["20260101-000000-aaaaaaa"]


def test_a_crash_while_saving_releases_the_reserved_id(tmp_path: Path, small_estimator) -> None:
    registry = Registry(tmp_path)
    version = registry.new_version_id("abc1234")

    def crash(folder: Path) -> None:
        raise KeyboardInterrupt("power cut while writing the report")

    with pytest.raises(KeyboardInterrupt):
        registry.save(version, small_estimator, {"libs": {}}, crash)
    assert list(registry.versions_dir.iterdir()) == []


def _three_versions_one_current(registry: Registry, estimator: TriageEstimator) -> list[str]:
    versions = ["20260101-000000-aaaaaaa", "20260102-000000-bbbbbbb", "20260103-000000-ccccccc"]
    for version in versions:
        _save(registry, estimator, version)
    registry.promote(versions[0])
    return versions


def test_promote_only_if_current_is_still_what_the_caller_saw(
    tmp_path: Path, small_estimator
) -> None:
    registry = Registry(tmp_path)
    champion, challenger, rolled_back_to = _three_versions_one_current(registry, small_estimator)

    registry.promote(rolled_back_to)  # `triage models use` while a retraining runs
    with pytest.raises(CurrentChanged) as refused:
        registry.promote(challenger, expected_current=champion)
    assert isinstance(refused.value, ArtifactError)
    assert refused.value.current == rolled_back_to
    assert f"CURRENT names {rolled_back_to} now, not {champion}" in str(refused.value)
    assert registry.current() == rolled_back_to
    assert [v for _, v in registry.promotions()] == [champion, rolled_back_to]

    registry.promote(challenger, expected_current=rolled_back_to)
    assert registry.current() == challenger


def test_promote_expecting_no_current_version(tmp_path: Path, small_estimator) -> None:
    registry = Registry(tmp_path)
    _save(registry, small_estimator, "20260101-000000-aaaaaaa")
    _save(registry, small_estimator, "20260102-000000-bbbbbbb")
    registry.promote("20260101-000000-aaaaaaa", expected_current=None)
    with pytest.raises(CurrentChanged, match="CURRENT names 20260101-000000-aaaaaaa now"):
        registry.promote("20260102-000000-bbbbbbb", expected_current=None)


def test_racing_promotions_expecting_the_same_current_let_one_win(
    tmp_path: Path, small_estimator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Check and replace are one step: without the lock both would see the old CURRENT."""
    import model.registry

    registry = Registry(tmp_path)
    champion, *challengers = _three_versions_one_current(registry, small_estimator)
    write_atomic = model.registry.write_atomic

    def slow_write(path: Path, data: bytes) -> None:
        time.sleep(0.3)  # widen the window between reading CURRENT and replacing it
        write_atomic(path, data)

    monkeypatch.setattr(model.registry, "write_atomic", slow_write)
    start = threading.Barrier(len(challengers))
    outcome: dict[str, object] = {}

    def promote(version: str) -> None:
        start.wait()
        try:
            Registry(tmp_path).promote(version, expected_current=champion)
            outcome[version] = "promoted"
        except CurrentChanged as exc:
            outcome[version] = exc

    threads = [threading.Thread(target=promote, args=(v,)) for v in challengers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [v for v, result in outcome.items() if result == "promoted"]
    losers = [result for result in outcome.values() if isinstance(result, CurrentChanged)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].current == winners[0]
    assert registry.current() == winners[0]
    assert [v for _, v in registry.promotions()] == [champion, winners[0]]


@pytest.mark.parametrize("action", ["promote", "prune"])
def test_promotions_and_prunes_wait_for_the_promotion_lock(
    tmp_path: Path, small_estimator, action: str
) -> None:
    """Across processes; a prune must not delete the version a promotion is making current."""
    registry = Registry(tmp_path)
    versions = _three_versions_one_current(registry, small_estimator)
    champion, other, newest = versions
    work = {"promote": lambda: registry.promote(other), "prune": lambda: registry.prune(keep=1)}
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; lock = open(sys.argv[1], 'a'); fcntl.flock(lock, fcntl.LOCK_EX);"
            " print('locked', flush=True); sys.stdin.read()",
            str(tmp_path / ".promote.lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"
        waiting = threading.Thread(target=work[action])
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive()
        assert registry.current() == champion and registry.list_versions() == versions
        holder.stdin.close()  # the other process ends, and its lock with it
        waiting.join(timeout=30)
        assert not waiting.is_alive()
        if action == "promote":
            assert registry.current() == other
        else:  # the newest and the current one are kept
            assert registry.list_versions() == [champion, newest]
    finally:
        holder.kill()
        holder.wait()
