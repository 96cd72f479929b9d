"""The model registry: one folder per trained version and a ``CURRENT`` pointer.

```
<model dir>/
  CURRENT                      one line: the promoted version id
  PROMOTIONS                   every promotion, one line each: when, which
  .promote.lock                held (flock) by each promotion and prune while it works
  versions/<version>/
    model.joblib               the pickled TriageEstimator
    manifest.json              provenance, thresholds, metrics, SHA-256 of model.joblib
    report/                    metrics report with pictures (written by training)
```

Writes go to a temporary folder that is renamed into place, and ``CURRENT`` is replaced
atomically, so a crash never leaves a half-written version or a dangling pointer. joblib files
are pickles, that is code: a version is loaded only when its SHA-256 matches its manifest.

Everything the registry writes gets the permissions ``open()`` and ``mkdir()`` would give under
the process umask, so a version one account trains another may serve.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import joblib
import sklearn

from model.estimator import LABELS, TriageEstimator
from model.predictor import DEFAULT_ACROSS_LANGUAGES, DEFAULT_BAND, TriageModel

# 2: two feature blocks, the concept lexicon removed; 3: hyphenated words split into their
# parts in German too (``model.text``), so a format-2 vocabulary holds words no longer read.
ARTIFACT_FORMAT = 3
ARTIFACT_NAME = "model.joblib"
MANIFEST_NAME = "manifest.json"
CURRENT_NAME = "CURRENT"
# Every promotion, one "<promoted at> <version>" line each, oldest first (times as in ids).
PROMOTIONS_NAME = "PROMOTIONS"
# Every promotion holds an flock on this file while it checks and replaces CURRENT.
PROMOTE_LOCK_NAME = ".promote.lock"
# The time at the start of a version id, and of a promotion's line: "20250114-103000".
_STAMP = "%Y%m%d-%H%M%S"
_STAMP_LENGTH = len("20250114-103000")
_REPO_ROOT = Path(__file__).resolve().parents[1]


class ArtifactError(RuntimeError):
    """A model version that cannot or must not be loaded; the message says why and what to do."""


class CurrentChanged(ArtifactError):
    """``promote(version, expected_current=...)`` found another version current: someone
    promoted (or rolled back to) one since the caller looked."""

    def __init__(self, version: str, expected: str | None, current: str | None) -> None:
        self.version, self.expected, self.current = version, expected, current
        super().__init__(
            f"CURRENT names {current or 'no version'} now, not {expected or 'no version'}: "
            f"it was changed meanwhile, so {version} is not promoted over that choice; "
            f"`triage models use {version}` promotes it anyway"
        )


class _Unchecked(enum.Enum):
    """``promote``'s default ``expected_current``: promote whatever is current now."""

    UNCHECKED = enum.auto()


def time_stamp(now: datetime | None = None) -> str:
    """The time (default: now) as version ids and promotion records begin with it, in UTC:
    ``20250114-103000``. Others that name runs after time (retraining's run ids) use it too,
    so all sort alike."""
    return (now or datetime.now(UTC)).strftime(_STAMP)


class VersionEntry(NamedTuple):
    """One version as listings show it: its manifest, or why that cannot be read."""

    version: str
    current: bool
    manifest: dict[str, Any] | None
    error: str | None


def default_model_dir() -> Path:
    """``TRIAGE_MODEL_DIR`` if set, else ``var/models`` in the repository (git-ignored)."""
    configured = os.environ.get("TRIAGE_MODEL_DIR")
    return Path(configured) if configured else _REPO_ROOT / "var" / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _umask_from_proc() -> int | None:
    """The umask as Linux (4.7 and later) shows it in /proc/self/status: read, not changed."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_by_setting() -> int:
    """The umask, read the portable way: set it, then set it back. A thread creating a file in
    between would get the wrong mode (0o077 then, so too strict, never too open)."""
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


# Where /proc cannot tell the umask, the one at import stands in: setting the umask to read it
# is only safe before other threads run.
_UMASK_AT_IMPORT = _umask_from_proc()
if _UMASK_AT_IMPORT is None:
    _UMASK_AT_IMPORT = _umask_by_setting()


def _umask() -> int:
    """The process umask now; where /proc cannot show it, as it was at import."""
    umask = _umask_from_proc()
    return _UMASK_AT_IMPORT if umask is None else umask


def make_staging_dir(parent: Path, prefix: str) -> Path:
    """A new, uniquely named folder in ``parent`` to fill before renaming it into place.

    ``tempfile.mkdtemp`` makes it 0700, which the rename keeps, so no other account (the
    service's, say) could read what it becomes; this one has the mode ``mkdir`` would give.
    """
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    os.chmod(staging, 0o777 & ~_umask())
    return staging


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _unreadable(path: Path, exc: OSError, holding: str = "") -> ArtifactError:
    """A registry file this account cannot read (no permission, a folder in its place, …)."""
    return ArtifactError(
        f"{path}: cannot be read ({_reason(exc)}); it must be a file this account can read"
        + holding
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see either the old or the new content, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            # mkstemp makes the file 0600; give it the mode a newly created file would have.
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# What a manifest must hold, and of which type; the model card and loading read these. The
# checksum covers the artifact only, so an edited manifest is caught here or not at all.
_MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": int,
    "version": str,
    "created_at": str,
    "labels": list,
    "thresholds": dict,
    "artifact": str,
    "artifact_sha256": str,
}
_MANIFEST_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "metrics": dict,
    "config": dict,
    "code": dict,
    "libs": dict,
    "concepts": dict,
    "eval_data": dict,
    "data": (list, dict),
}


def _check_manifest(path: Path, manifest: object) -> None:
    """Raise ``ArtifactError`` naming the first field of ``manifest`` that cannot be used."""
    problem = _manifest_problem(manifest)
    if problem:
        raise ArtifactError(f"{path}: {problem}; the manifest was edited or damaged, retrain")


def _manifest_problem(manifest: object) -> str | None:
    if not isinstance(manifest, dict):
        return f"a JSON object expected, not {type(manifest).__name__}"
    missing = [key for key in _MANIFEST_FIELDS if key not in manifest]
    if missing:
        return f"field {missing[0]!r} is missing"
    for key, kind in {**_MANIFEST_FIELDS, **_MANIFEST_OPTIONAL}.items():
        value = manifest.get(key)
        if value is None and key in _MANIFEST_OPTIONAL:  # e.g. a model without concept space
            continue
        if key in manifest and (not isinstance(value, kind) or isinstance(value, bool)):
            return f"field {key!r} is {type(value).__name__}, expected {_names(kind)}"
    if not all(isinstance(label, str) for label in manifest["labels"]):
        return "field 'labels' must list strings"
    if not all(_is_number(t) for t in manifest["thresholds"].values()):
        return "field 'thresholds' must map labels to numbers"
    artifact = manifest["artifact"]
    if artifact in ("", ".", "..") or Path(artifact).name != artifact:
        return f"field 'artifact' must name a file in the version's folder, not {artifact!r}"
    if not all(isinstance(v, str) for v in (manifest.get("libs") or {}).values()):
        return "field 'libs' must map library names to version strings"
    return None


def _is_version(folder: Path) -> bool:
    """Whether ``folder`` (in ``versions/``) is a version's: one holding a manifest, or one
    this account cannot look into. An empty one is an id reserved for a save to come."""
    try:
        return folder.is_dir() and (folder / MANIFEST_NAME).exists()
    except OSError:  # no permission to look: list it, and reading its manifest says why
        return True


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


class Registry:
    """Versions of the model under one directory."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_model_dir()
        # Ids new_version_id reserved (as empty folders) for this registry's save() to fill.
        self._reserved: set[str] = set()

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    def version_dir(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise ArtifactError(f"not a version id: {version!r}")
        return self.versions_dir / version

    def list_versions(self) -> list[str]:
        """Version ids, oldest first (ids sort by time).

        A folder this account cannot look into is listed: reading its manifest says why it
        cannot be used, where leaving it out would hide it.
        """
        try:
            folders = list(self.versions_dir.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ArtifactError(
                f"{self.versions_dir}: cannot be listed ({_reason(exc)}); it must be a folder "
                "this account can read"
            ) from exc
        return sorted(p.name for p in folders if not p.name.startswith(".") and _is_version(p))

    def current(self) -> str | None:
        """The version ``CURRENT`` names; None when there is no ``CURRENT``."""
        pointer = self.root / CURRENT_NAME
        try:
            version = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise ArtifactError(
                f"{pointer}: not a version id (the file is not UTF-8 text)"
            ) from None
        except OSError as exc:
            raise _unreadable(pointer, exc, ", naming the current version") from exc
        return version or None

    def manifest(self, version: str) -> dict[str, Any]:
        """A version's manifest, checked field by field."""
        path = self.version_dir(version) / MANIFEST_NAME
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError):
            raise ArtifactError(
                f"no model version {version!r} in {self.root} (known: {self._known()})"
            ) from None
        except OSError as exc:
            raise _unreadable(path, exc) from exc
        except ValueError as exc:  # not JSON, not UTF-8, an integer of 5000 digits
            raise ArtifactError(f"{path}: manifest is not valid JSON ({exc}); retrain") from exc
        except RecursionError:
            raise ArtifactError(
                f"{path}: manifest is nested too deeply to read; it was edited or damaged, retrain"
            ) from None
        _check_manifest(path, manifest)
        return manifest

    def _known(self) -> str:
        try:
            return ", ".join(self.list_versions()) or "none"
        except ArtifactError:
            return "cannot tell"

    def catalogue(self) -> tuple[list[VersionEntry], str | None]:
        """Every version, oldest first, each with its manifest or why it cannot be read; and
        what is wrong with ``CURRENT`` (None when it names one of them, or is absent). A
        listing for people: one damaged version, or a damaged pointer, does not hide the others.

        Raises ``ArtifactError`` only when the versions folder itself cannot be listed.
        """
        try:
            current, pointer_error = self.current(), None
        except ArtifactError as exc:
            current, pointer_error = None, str(exc)
        versions = self.list_versions()
        if current is not None and current not in versions:
            pointer_error = (
                f"{self.root / CURRENT_NAME} names {current}, which is not a version here; "
                "nothing is served from it: choose a version with `triage models use VERSION`"
            )
        entries = []
        for version in versions:
            try:
                manifest, error = self.manifest(version), None
            except ArtifactError as exc:
                manifest, error = None, str(exc)
            entries.append(VersionEntry(version, version == current, manifest, error))
        return entries, pointer_error

    def new_version_id(self, git_sha: str | None = None, now: datetime | None = None) -> str:
        """``20250114-103000-ab12cd3``: sorts by time, points to a commit.

        The id is reserved at once, as an empty folder that ``save`` of this registry object
        fills: two trainings into one registry that finish in the same second get two ids
        (the second ``-2``), not one whose second save fails after all the training.
        """
        base = f"{time_stamp(now)}-{git_sha or 'nogit'}"
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        version, n = base, 2
        while True:
            try:
                self.version_dir(version).mkdir()  # atomic: one caller wins each name
            except FileExistsError:
                version, n = f"{base}-{n}", n + 1
                continue
            self._reserved.add(version)
            return version

    def save(
        self,
        version: str,
        estimator: TriageEstimator,
        manifest: dict[str, Any],
        write_extras: Callable[[Path], None] | None = None,
    ) -> Path:
        """Write a new version folder atomically; returns its path. Does not promote it.

        ``version`` is best an id ``new_version_id`` of this registry object reserved; any
        other is reserved here, and refused when it is taken.
        """
        target = self.version_dir(version)
        if version not in self._reserved:
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            try:
                target.mkdir()
            except FileExistsError:
                raise ArtifactError(
                    f"model version {version} already exists in {self.root}"
                ) from None
            self._reserved.add(version)
        try:
            return self._fill(target, version, estimator, manifest, write_extras)
        except BaseException:
            with contextlib.suppress(OSError):
                target.rmdir()  # the reservation, empty unless the version was written
            raise
        finally:
            self._reserved.discard(version)

    def _fill(
        self,
        target: Path,
        version: str,
        estimator: TriageEstimator,
        manifest: dict[str, Any],
        write_extras: Callable[[Path], None] | None,
    ) -> Path:
        if tuple(manifest.get("labels", estimator.labels)) != estimator.labels:
            raise ArtifactError("manifest labels differ from the estimator's labels")
        staging = make_staging_dir(self.versions_dir, f".tmp-{version}-")
        try:
            artifact = staging / ARTIFACT_NAME
            joblib.dump(estimator, artifact, compress=3)
            full = {
                "format": ARTIFACT_FORMAT,
                "version": version,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "labels": list(estimator.labels),
                **manifest,
                "thresholds": dict(estimator.thresholds),
                "artifact": ARTIFACT_NAME,
                "artifact_sha256": sha256_file(artifact),
            }
            if write_extras is not None:
                write_extras(staging)
            (staging / MANIFEST_NAME).write_text(
                json.dumps(full, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            for path in staging.rglob("*"):
                if path.is_file():
                    with path.open("rb") as handle:
                        os.fsync(handle.fileno())
            os.rename(staging, target)  # replaces the empty reserved folder in one step
            _fsync_dir(self.versions_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def outdated(self, version: str) -> bool:
        """Whether ``version`` was written in another artifact format than this code reads."""
        try:
            return self.manifest(version).get("format") != ARTIFACT_FORMAT
        except ArtifactError:
            return False  # unreadable for another reason: loading it says which

    def verify(self, version: str) -> dict[str, Any]:
        """Check format, checksum and library versions; returns the manifest."""
        manifest = self.manifest(version)
        folder = self.version_dir(version)
        if manifest.get("format") != ARTIFACT_FORMAT:
            raise ArtifactError(
                f"{folder}: artifact format {manifest.get('format')}, this code reads "
                f"format {ARTIFACT_FORMAT}; retrain with `triage train`"
            )
        artifact = folder / manifest.get("artifact", ARTIFACT_NAME)
        try:
            actual = sha256_file(artifact)
        except FileNotFoundError:
            raise ArtifactError(
                f"{artifact}: missing; the version is incomplete, retrain"
            ) from None
        except OSError as exc:
            raise _unreadable(artifact, exc) from exc
        if actual != manifest.get("artifact_sha256"):
            raise ArtifactError(
                f"{artifact}: SHA-256 {actual[:12]}… does not match the manifest "
                f"({str(manifest.get('artifact_sha256'))[:12]}…); the file was changed or "
                "corrupted after training and will not be loaded"
            )
        return manifest

    def load(
        self,
        version: str | None = None,
        uncertainty_band: float = DEFAULT_BAND,
        allow_library_mismatch: bool = False,
        n_across_languages: int = DEFAULT_ACROSS_LANGUAGES,
    ) -> TriageModel:
        """Load a version (default: current) after verifying it."""
        version = version or self.current()
        if version is None:
            raise ArtifactError(f"no current model in {self.root}; train one with `triage train`")
        manifest = self.verify(version)
        trained_with = manifest.get("libs", {}).get("scikit-learn")
        if trained_with and trained_with != sklearn.__version__ and not allow_library_mismatch:
            raise ArtifactError(
                f"model {version} was trained with scikit-learn {trained_with}, this is "
                f"{sklearn.__version__}; retrain, or allow the mismatch for local experiments"
            )
        artifact = self.version_dir(version) / manifest.get("artifact", ARTIFACT_NAME)
        try:
            estimator = joblib.load(artifact)
        except Exception as exc:  # a verified file that fails to unpickle: code drift
            raise ArtifactError(f"{artifact}: cannot be loaded ({exc}); retrain") from exc
        if not isinstance(estimator, TriageEstimator):
            raise ArtifactError(f"{artifact}: not a TriageEstimator; retrain")
        if list(estimator.labels) != list(manifest.get("labels", [])):
            raise ArtifactError(f"{artifact}: labels differ from the manifest; retrain")
        if tuple(estimator.labels) != LABELS:  # the service, evaluation and reviews use these
            raise ArtifactError(
                f"{artifact}: labels {', '.join(estimator.labels)}; this code works with "
                f"{', '.join(LABELS)}, in that order; retrain"
            )
        return TriageModel(
            estimator,
            version,
            manifest,
            uncertainty_band=uncertainty_band,
            n_across_languages=n_across_languages,
        )

    def promote(
        self, version: str, *, expected_current: str | _Unchecked | None = _Unchecked.UNCHECKED
    ) -> None:
        """Make ``version`` current (atomically), after verifying it, and record that it was.

        Args:
            expected_current: promote only if ``CURRENT`` still names this version (None: no
                version), else raise ``CurrentChanged``; checked and replaced under the
                promotion lock, so no other promotion comes in between.
        """
        with self._promotion_lock():  # verified under it too: a prune cannot delete it meanwhile
            self.verify(version)
            if expected_current is not _Unchecked.UNCHECKED:
                current = self.current()
                if current != expected_current:
                    raise CurrentChanged(version, expected_current, current)
            write_atomic(self.root / CURRENT_NAME, (version + "\n").encode("utf-8"))
            self._record_promotion(version)

    @contextlib.contextmanager
    def _promotion_lock(self) -> Iterator[None]:
        """Held by every promotion and prune, across processes (flock): one at a time reads
        and changes ``CURRENT`` and the versions it may name."""
        self.root.mkdir(parents=True, exist_ok=True)
        # Read-only is enough for flock, and lets an account without write permission on a
        # lock file another made still take it.
        descriptor = os.open(self.root / PROMOTE_LOCK_NAME, os.O_RDONLY | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def _record_promotion(self, version: str) -> None:
        # One short append is atomic, so promotions racing (a rollback during a retrain) are
        # both kept; a line a crash cut short is ended first, and skipped when read.
        line = f"{time_stamp()} {version}\n".encode()
        # 0o666, as open() gives (minus the umask): the default 0o777 made it executable.
        descriptor = os.open(
            self.root / PROMOTIONS_NAME, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666
        )
        try:
            size = os.fstat(descriptor).st_size
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def promotions(self) -> list[tuple[str, str]]:
        """``(promoted at, version)`` of every promotion recorded, oldest first."""
        path = self.root / PROMOTIONS_NAME
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines():
            at, _, version = line.partition(" ")
            if len(at) == _STAMP_LENGTH and version and not version.startswith("."):
                found.append((at, version))
        return found

    def served(self, versions: list[str] | None = None) -> set[str]:
        """Of ``versions`` (default: all), those that were current at some time, as far as the
        registry can tell: those promoted since promotions are recorded, and every version
        made before the first record (a registry from before the record cannot tell which of
        those were served).
        """
        versions = self.list_versions() if versions is None else versions
        promotions = self.promotions()
        if not promotions:
            return set(versions)
        since, promoted = promotions[0][0], {v for _, v in promotions}
        return {v for v in versions if v in promoted or v[:_STAMP_LENGTH] < since}

    def prune(self, keep: int) -> list[str]:
        """Delete all but the ``keep`` newest versions that were served; never the current one.

        Versions never promoted (rejected challengers, trainings held back) do not count
        towards ``keep`` and go too: counted, a few nights of rejected challengers would
        crowd out the last good versions to roll back to.
        """
        if keep < 1:
            raise ArtifactError("keep at least one version")
        # Under the promotion lock: a version being promoted (a challenger no record shows
        # as served yet) is either current by now, or not promoted because it is gone.
        with self._promotion_lock():
            current = self.current()
            versions = self.list_versions()
            served = self.served(versions)
            kept = [v for v in versions if v in served][-keep:]
            doomed = [v for v in versions if v != current and v not in kept]
            for version in doomed:
                # Rename first so a crash mid-delete never leaves a half version that lists.
                trash = self.versions_dir / f".trash-{version}"
                os.rename(self.version_dir(version), trash)
                shutil.rmtree(trash)
        self._remove_leftovers()
        return doomed

    def _remove_leftovers(self, older_than: float = 3600.0) -> None:
        """Staging folders a killed save or prune left behind (``.tmp-*``, ``.trash-*``), and
        the empty folders of ids reserved by trainings that never saved.

        They never list as versions, but they hold a whole model, training snippets
        included, which an erasure must not leave behind. Only those untouched for an hour
        go: a save running right now stages in a fresh one.
        """
        cutoff = time.time() - older_than
        for folder in (self.versions_dir, self.root / "runs"):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if not path.is_dir() or path.stat().st_mtime >= cutoff:
                    continue
                if path.name.startswith((".tmp-", ".trash-")):
                    shutil.rmtree(path, ignore_errors=True)
                elif folder == self.versions_dir and not path.name.startswith("."):
                    with contextlib.suppress(OSError):  # only an empty one: a reservation
                        path.rmdir()


def load_model(
    path: Path | str | None = None, version: str | None = None, **kwargs: Any
) -> TriageModel:
    """Load a model for suggestions.

    ``path`` is a registry directory (its current version is loaded unless ``version`` is
    given) or one version's folder; default: ``TRIAGE_MODEL_DIR`` or ``var/models``.
    """
    root = Path(path) if path is not None else default_model_dir()
    if (root / MANIFEST_NAME).is_file():
        return Registry(root.parent.parent).load(root.name, **kwargs)
    return Registry(root).load(version, **kwargs)
