"""Reading ``triage predict`` input (JSON Lines, CSV, stdin) and writing one line per record."""

from __future__ import annotations

import csv
import io
import itertools
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from model.predictor import TriageModel
from model.predictor import usable_cores as usable_cores  # the command line's core count
from training.data import json_kind

BATCH = 4096  # records per round; output is flushed after each


class InputError(ValueError):
    """The input as a whole cannot be read (missing file, no ``text`` column in a CSV)."""


@dataclass(frozen=True)
class InputRecord:
    id: Any
    text: str | None  # None when the record could not be read
    error: str | None = None


def _decode_line(raw: bytes, number: int) -> tuple[str | None, str | None]:
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"line {number}: not UTF-8 (byte {exc.start})"


def _jsonl_records(data: bytes, source: str) -> Iterator[InputRecord]:
    for number, raw in enumerate(data.splitlines(), start=1):
        line, problem = _decode_line(raw, number)
        if line is not None and number == 1:
            line = line.lstrip("\ufeff")
        if line is not None and not line.strip():
            continue
        if problem:
            yield InputRecord(number, None, f"{source}:{problem}")
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield InputRecord(number, None, f"{source}:{number}: broken JSON: {exc.msg}")
            continue
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number, deep nesting
            yield InputRecord(number, None, f"{source}:{number}: unreadable JSON: {exc}")
            continue
        if not isinstance(record, dict):
            yield InputRecord(number, None, f"{source}:{number}: expected a JSON object")
            continue
        record_id = record.get("id", number)
        if not isinstance(record_id, str | int) or isinstance(record_id, bool):
            yield InputRecord(
                number, None, f"{source}:{number}: field 'id': expected a string or whole number"
            )
            continue
        text = record.get("text")
        if not isinstance(text, str):
            found = "missing" if "text" not in record else f"got {json_kind(text)}"
            yield InputRecord(
                record_id, None, f"{source}:{number}: field 'text': expected a string, {found}"
            )
            continue
        yield InputRecord(record_id, text)


def _csv_records(data: bytes, source: str) -> Iterator[InputRecord]:
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{source}:{line}: not UTF-8 (byte {exc.start}); save the CSV as UTF-8"
        ) from exc
    # A text may be as long as a request can be (the csv module stops at 128 KB by default).
    csv.field_size_limit(max(csv.field_size_limit(), len(content) + 1))
    # strict: a quote that is never closed would otherwise take every later row into one
    # text, silently; all rows are read before any is scored, so nothing is half written.
    reader = csv.DictReader(io.StringIO(content, newline=""), strict=True)
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise InputError(_csv_problem(content, source, 1, reader.reader.line_num, exc)) from None
    if not fieldnames or "text" not in fieldnames:
        raise InputError(
            f"{source}:1: the CSV header needs a 'text' column "
            f"(found: {', '.join(fieldnames or []) or 'nothing'})"
        )
    records = []
    for number in itertools.count(1):
        first_line = reader.reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(
                _csv_problem(content, source, first_line, reader.reader.line_num, exc)
            ) from None
        text = row.get("text")
        record_id = row.get("id") or number
        if text is None:
            records.append(
                InputRecord(
                    record_id, None, f"{source}: row {number}: fewer columns than the header"
                )
            )
        else:
            records.append(InputRecord(record_id, text))
    yield from records


def _csv_problem(content: str, source: str, first_line: int, line: int, exc: csv.Error) -> str:
    """What is wrong with a CSV the reader gave up on, and where."""
    if str(exc) == "unexpected end of data":  # the file ended inside a quoted field
        opened = _unclosed_quote_line(content, first_line)
        return (
            f"{source}:{opened}: a quoted field starts here and is never closed, so every "
            'later row would be read into it; close it with " (a quote inside a quoted '
            'text is written twice: "")'
        )
    return (
        f'{source}:{line}: broken CSV quoting ({exc}); a quoted field must end with " '
        'before the next comma or line end (a quote inside it is written twice: "")'
    )


def _unclosed_quote_line(content: str, first_line: int) -> int:
    """Line of the quote that opens the field left open, scanning from the row's first line."""
    opened, in_quotes, field_start = first_line, False, True
    lines = io.StringIO(content, newline="").readlines()  # split as the csv reader splits
    for number, line in enumerate(lines[first_line - 1 :], start=first_line):
        i = 0
        while i < len(line):
            char = line[i]
            if in_quotes:
                if char == '"' and line[i + 1 : i + 2] == '"':
                    i += 1  # an escaped quote
                elif char == '"':
                    in_quotes = False
            elif char == '"' and field_start:
                in_quotes, opened = True, number
            field_start = not in_quotes and char in ",\r\n"
            i += 1
    return opened


def read_records(input_path: str) -> list[InputRecord]:
    """All records of a ``.jsonl``/``.csv`` file or of stdin (``-``, JSON Lines)."""
    if input_path == "-":
        return list(_jsonl_records(sys.stdin.buffer.read(), "<stdin>"))
    path = Path(input_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    if path.suffix.lower() == ".csv":
        return list(_csv_records(data, str(path)))
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return list(_jsonl_records(data, str(path)))
    raise InputError(f"{path}: expected a .jsonl or .csv file, or - for stdin")


def worker_count(requested: int, cores: int) -> tuple[int, str | None]:
    """Worker processes for ``--jobs requested`` on ``cores``, and a note when it is capped.

    More workers than cores are no faster, and each is a forked copy of the model: ``--jobs
    1000`` would have started a thousand.
    """
    if requested == -1:
        return cores, None
    if requested > cores:
        return (
            cores,
            f"note: --jobs {requested} is more than the {cores} core(s) here; using {cores}",
        )
    return max(1, requested), None


def _error_line(record: InputRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "error": record.error,
        "labels": [],
        "outcome": "needs_review",
        "flags": ["unreadable_record"],
    }


def write_predictions(
    model: TriageModel,
    records: list[InputRecord],
    out: TextIO,
    explain: bool = True,
    n_jobs: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
) -> int:
    """Write one JSON line per record, in input order; returns how many were unreadable.

    ``progress(step, done, total)`` is called after each batch of records.
    """
    problems = 0
    for start in range(0, len(records), BATCH):
        batch = records[start : start + BATCH]
        readable = [r for r in batch if r.text is not None]
        lines = iter(
            model.json_lines(
                [r.text for r in readable], [r.id for r in readable], explain=explain, n_jobs=n_jobs
            )
        )
        for record in batch:
            if record.text is None:
                problems += 1
                out.write(json.dumps(_error_line(record), ensure_ascii=False) + "\n")
            else:
                out.write(next(lines) + "\n")
        out.flush()
        if progress is not None:
            progress("suggesting", start + len(batch), len(records))
    return problems
