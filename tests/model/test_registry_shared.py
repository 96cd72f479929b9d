"""A registry shared by accounts: what one writes, another can read."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import pytest

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
    for name in ("CURRENT", "PROMOTIONS"):
        assert name in modes
    assert len([n for n in modes if n.startswith("versions/") and n.count("/") == 1]) == 1
    assert len([n for n in modes if n.startswith("runs/.tmp-run-")]) == 1
