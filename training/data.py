"""Loading and validating labeled feature requests (JSON Lines, UTF-8)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.estimator import LABELS
from model.text import lone_surrogate

LANGS = ("de", "en")
MAX_ERRORS_SHOWN = 20


@dataclass(frozen=True)
class Sample:
    """One labeled feature request; ``extra`` keeps every other field of the record."""

    id: str
    text: str
    labels: tuple[str, ...]
    lang: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "labels": list(self.labels),
            "lang": self.lang,
            **self.extra,
        }


@dataclass(frozen=True)
class DataProblem:
    path: str
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path  # 0: the whole file
        return (
            f"{where}: field '{self.field}': {self.message}"
            if self.field
            else (f"{where}: {self.message}")
        )


class DataError(ValueError):
    """A data file that cannot be used; lists every problem with file, line and field."""

    def __init__(self, problems: list[DataProblem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:MAX_ERRORS_SHOWN])
        more = len(problems) - MAX_ERRORS_SHOWN
        suffix = f"\n  … and {more} more" if more > 0 else ""
        files = sorted({p.path for p in problems})
        where = files[0] if len(files) == 1 else f"{len(files)} files"
        super().__init__(f"{len(problems)} problem(s) in {where}:\n{shown}{suffix}")


def json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words: ``null``, ``a number``, not ``a NoneType``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _check_record(record: Any, path: str, line: int) -> tuple[Sample | None, list[DataProblem]]:
    problems: list[DataProblem] = []

    def problem(field_name: str | None, message: str) -> None:
        problems.append(DataProblem(path, line, field_name, message))

    if not isinstance(record, dict):
        problem(None, f"expected a JSON object, got {json_kind(record)}")
        return None, problems
    for name in ("id", "text", "labels", "lang"):
        if name not in record:
            problem(name, "missing (every record needs id, text, labels and lang)")
    raw_id = record.get("id")
    valid_id = isinstance(raw_id, str | int) and not isinstance(raw_id, bool)
    if "id" in record and not (valid_id and str(raw_id).strip()):
        problem("id", f"expected a non-empty string or whole number, got {raw_id!r}")
    text = record.get("text")
    if "text" in record:
        if not isinstance(text, str):
            problem("text", f"expected a string, got {json_kind(text)}")
        elif not text.strip():
            problem("text", "is empty")
        elif (at := lone_surrogate(text)) is not None:
            # No UTF-8 file can hold it: a model trained on it could never be written out.
            problem("text", f"holds half of a UTF-16 surrogate pair at character {at}")
    labels = record.get("labels")
    if "labels" in record:
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            problem("labels", f"expected a list of label names, got {labels!r}")
        else:
            unknown = [x for x in labels if x not in LABELS]
            if unknown:
                problem(
                    "labels",
                    f"unknown label(s) {', '.join(map(repr, unknown))} "
                    f"(expected any of {', '.join(LABELS)})",
                )
            if len(set(labels)) != len(labels):
                problem("labels", f"a label is listed twice: {labels!r}")
    lang = record.get("lang")
    if "lang" in record and lang not in LANGS:
        problem("lang", f"expected one of {', '.join(LANGS)}, got {lang!r}")
    if problems:
        return None, problems
    extra = {k: v for k, v in record.items() if k not in ("id", "text", "labels", "lang")}
    ordered = tuple(label for label in LABELS if label in labels)
    return Sample(str(raw_id), text, ordered, lang, extra), []


def parse_samples(data: bytes, path: str) -> list[Sample]:
    """Validate raw JSON Lines bytes; raises ``DataError`` listing every problem found."""
    return _parse(data, path)[0]


def _parse(data: bytes, path: str) -> tuple[list[Sample], list[int]]:
    """The samples of a JSON Lines file and the line each was read from."""
    problems: list[DataProblem] = []
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(
                DataProblem(path, number, None, f"not UTF-8 (byte {exc.start}): save as UTF-8")
            )
            continue
        if number == 1 and line.startswith("\ufeff"):
            line = line[1:]
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(
                DataProblem(path, number, None, f"broken JSON at column {exc.colno}: {exc.msg}")
            )
            continue
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number, deep nesting
            problems.append(DataProblem(path, number, None, f"unreadable JSON: {exc}"))
            continue
        sample, found = _check_record(record, path, number)
        problems.extend(found)
        if sample is None:
            continue
        if sample.id in seen:
            problems.append(
                DataProblem(
                    path, number, "id", f"duplicate id {sample.id!r} (line {seen[sample.id]})"
                )
            )
            continue
        seen[sample.id] = number
        samples.append(sample)
    if not samples and not problems:
        problems.append(DataProblem(path, 0, None, "the file holds no records"))
    if problems:
        raise DataError(problems)
    return samples, list(seen.values())


@dataclass(frozen=True)
class DataFile:
    """A loaded file with its provenance for the manifest."""

    path: str
    sha256: str
    samples: list[Sample]
    # The line each sample was read from (empty when not read from a file).
    lines: list[int] = field(default_factory=list)

    def line_of(self, index: int) -> int:
        """Line of ``samples[index]`` in the file, 0 when unknown."""
        return self.lines[index] if index < len(self.lines) else 0

    def summary(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, **label_mix(self.samples)}


def label_mix(samples: list[Sample]) -> dict[str, Any]:
    """How many requests there are, per label, without a label, and per language."""
    return {
        "n": len(samples),
        "per_label": {label: sum(label in s.labels for s in samples) for label in LABELS},
        "no_label": sum(not s.labels for s in samples),
        "per_lang": {lang: sum(s.lang == lang for s in samples) for lang in LANGS},
    }


def load_samples(path: Path | str) -> DataFile:
    """Read and validate one JSON Lines file of labeled requests."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError([DataProblem(str(path), 0, None, f"cannot read: {exc.strerror}")]) from exc
    samples, lines = _parse(data, str(path))
    return DataFile(str(path), hashlib.sha256(data).hexdigest(), samples, lines)


def translation_pairs(originals: list[Sample], translations: DataFile) -> list[tuple[str, str]]:
    """(original text, translated text) for each translation, found by its ``source_id``."""
    texts = {s.id: s.text for s in originals}
    pairs = []
    for sample in translations.samples:
        source = sample.extra.get("source_id")
        if source not in texts:
            raise DataError(
                [DataProblem(translations.path, 0, "source_id", f"{sample.id}: {source!r} unknown")]
            )
        pairs.append((texts[source], sample.text))
    return pairs


def _file_key(path: Path) -> tuple[int, int] | Path:
    """What makes two spellings the same file: device and inode, else the resolved path."""
    try:
        info = path.stat()
    except OSError:
        return path.resolve()
    return (info.st_dev, info.st_ino)


def load_many(paths: list[Path | str]) -> list[DataFile]:
    """Load several files; problems of all files are reported together, ids must be unique.

    A file given twice (under any spelling, or as a hard link) is refused: it would train on
    each of its requests twice.
    """
    files: list[DataFile] = []
    problems: list[DataProblem] = []
    given: dict[tuple[int, int] | Path, Path] = {}
    for path in map(Path, paths):
        key = _file_key(path)
        if key in given:
            same = "" if str(given[key]) == str(path) else f" (as {given[key]})"
            problems.append(
                DataProblem(str(path), 0, None, f"given twice{same}: give each training file once")
            )
            continue
        given[key] = path
        try:
            files.append(load_samples(path))
        except DataError as exc:
            problems.extend(exc.problems)
    seen: dict[str, tuple[DataFile, int]] = {}
    for data_file in files:
        for index, sample in enumerate(data_file.samples):
            if sample.id in seen:
                first, first_index = seen[sample.id]
                problems.append(
                    DataProblem(
                        data_file.path,
                        data_file.line_of(index),
                        "id",
                        f"id {sample.id!r} is also at {first.path}:{first.line_of(first_index)}; "
                        "ids must be unique across the training files",
                    )
                )
                continue
            seen[sample.id] = (data_file, index)
    if problems:
        raise DataError(problems)
    return files
