"""The ``triage`` command line: train, predict, evaluate, manage model versions, serve.

This is the one place that composes ``training`` and ``service`` (``serve`` trains a default
model when the registry is empty). Commands parse arguments and call plain functions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from model.registry import ArtifactError, Registry
from triage_cli import predict as predict_io

if TYPE_CHECKING:
    from training.config import TrainConfig

app = typer.Typer(
    help="Request Triage: suggest triage labels for feature requests (German and English).",
    no_args_is_help=True,
    add_completion=False,
)
models_app = typer.Typer(
    help="List, inspect, switch and prune model versions.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
# soft_wrap: never fold a line at the console width. Without a terminal (a log file,
# journald) rich assumes 80 columns and broke paths and version ids in two.
err = Console(stderr=True, soft_wrap=True)

ModelDir = Annotated[
    Path | None,
    typer.Option(
        "--model-dir", help="Registry directory (default: $TRIAGE_MODEL_DIR or var/models)."
    ),
]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)  # plain, never wrapped: paths stay intact
    raise typer.Exit(code)


def _config(config_path: Path | None) -> TrainConfig:
    """The training config, or exit naming the option, the file and the key."""
    from training.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        _fail(f"--config {exc}" if config_path is not None else str(exc))


class _Terminated(BaseException):
    """SIGTERM arrived. A BaseException, as KeyboardInterrupt: no ``except Exception`` eats it."""


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into ``_Terminated`` in this process, so it unwinds as on Ctrl-C.

    Killed outright, the process left its forked workers writing into a closed pipe, each
    with a BrokenPipeError traceback. Unwinding stops the pool; a worker (it inherits this
    handler through fork) just ends, silently, as it would without one.

    A signal that lands where Python ignores exceptions (an at-fork hook while the pool
    starts its workers, a ``__del__``) loses its ``_Terminated``; the run went on to the end
    and exited 0 after an "Exception ignored" traceback. So the signal is also remembered, a
    body that ends normally after it raises ``_Terminated`` all the same, and the lost one is
    not printed.
    """
    parent = os.getpid()
    terminated = False

    def handler(signum: int, frame: object) -> None:
        nonlocal terminated
        if os.getpid() != parent:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        terminated = True
        raise _Terminated

    def quiet(unraisable: sys.UnraisableHookArgs) -> None:  # Python's "Exception ignored"
        if not isinstance(unraisable.exc_value, _Terminated):
            previous_hook(unraisable)

    previous, previous_hook = signal.signal(signal.SIGTERM, handler), sys.unraisablehook
    sys.unraisablehook = quiet
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = previous_hook
    if terminated:
        raise _Terminated


class _ProgressBar:
    """Shows each step of a long run as a progress bar on stderr."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> _ProgressBar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, step: str, done: int, total: int) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.bar.add_task(step, total=total)
        self.bar.update(self.tasks[step], completed=done, total=total)


def train_default(
    model_dir: Path | None,
    data: list[Path] | None = None,
    eval_path: Path | None = None,
    config_path: Path | None = None,
) -> str:
    """Train, evaluate, register and promote; prints the metrics table, returns the version."""
    from training.data import DataError
    from training.train import train

    config = _config(config_path)
    try:
        with _ProgressBar() as progress:
            result = train(data, eval_path, model_dir, config, progress=progress)
    except DataError as exc:
        _fail(str(exc))
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    _print_metrics(result.metrics)
    if result.unread:
        shown = ", ".join(result.unread[:10]) + (" …" if len(result.unread) > 10 else "")
        err.print(
            f"warning: the model reads no word of {len(result.unread)} training request(s): "
            f"{shown}. Greeting, signature, footer or template rules took all of their text.",
            markup=False,
            highlight=False,
        )
    if result.held_back:
        print(result.version)  # saved all the same: the last stdout line is its id
        _fail(
            f"version {result.version} was saved but NOT made current: {result.held_back}. "
            f"To serve it all the same: triage models use {result.version}"
        )
    err.print(
        f"trained in {result.seconds:.1f} s; version {result.version} is now current "
        f"({result.path})",
        markup=False,
        highlight=False,
    )
    return result.version


def _print_metrics(metrics: dict, to_stderr: bool = True) -> None:
    typer.echo(
        f"{'label':<18}{'precision':>10}{'recall':>10}{'F1':>8}{'support':>9}", err=to_stderr
    )
    for label, m in metrics["per_label"].items():
        typer.echo(
            f"{label:<18}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>8.3f}"
            f"{m['support']:>9}",
            err=to_stderr,
        )
    typer.echo(
        f"macro F1 {metrics['macro_f1']:.3f}  micro F1 {metrics['micro_f1']:.3f}  "
        f"subset accuracy {metrics['subset_accuracy']:.3f}",
        err=to_stderr,
    )
    for lang, m in metrics.get("per_language", {}).items():
        typer.echo(f"macro F1 [{lang}] {m['macro_f1']:.3f} (n={m['n']})", err=to_stderr)


@app.command()
def train(
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="Training file(s), JSON Lines.")
    ] = None,
    eval_path: Annotated[
        Path | None,
        typer.Option("--eval", help="Evaluation file (default data/samples/eval.jsonl)."),
    ] = None,
    model_dir: ModelDir = None,
    config: Annotated[Path | None, typer.Option("--config", help="Training config TOML.")] = None,
) -> None:
    """Validate the data, train, evaluate, register the new version and make it current."""
    version = train_default(model_dir, data, eval_path, config)
    print(version)


@app.command()
def predict(
    input_path: Annotated[
        str,
        typer.Argument(metavar="INPUT", help=".jsonl or .csv file, or - for stdin (JSON Lines)."),
    ],
    model_dir: ModelDir = None,
    no_explain: Annotated[
        bool,
        typer.Option(
            "--no-explain",
            help="Leave out the reasons: evidence words and similar requests (faster).",
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            min=-1,
            help="Worker processes for large inputs (-1: all cores); more than the cores "
            "are capped to them, with a note.",
        ),
    ] = -1,
) -> None:
    """Print one JSON line per input record, in input order."""
    jobs, note = predict_io.worker_count(jobs, predict_io.usable_cores())
    if note:
        typer.echo(note, err=True)
    try:
        with _sigterm_unwinds():
            model = Registry(model_dir).load()
            records = predict_io.read_records(input_path)
            with _ProgressBar() as progress:
                problems = predict_io.write_predictions(
                    model,
                    records,
                    sys.stdout,
                    explain=not no_explain,
                    n_jobs=jobs,
                    progress=progress,
                )
    except ArtifactError as exc:
        _fail(str(exc))
    except predict_io.InputError as exc:
        _fail(str(exc), code=2)
    except KeyboardInterrupt:
        sys.stdout.flush()
        _fail("interrupted; the lines written so far are complete, the rest are missing", 130)
    except _Terminated:
        sys.stdout.flush()
        _fail("terminated; the lines written so far are complete, the rest are missing", 143)
    if problems:
        # Every line is written, but a batch job must not take the run for a clean one.
        _fail(f"{problems} record(s) could not be read; their lines carry an 'error'", 1)


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Labeled JSON Lines file.")],
    model_dir: ModelDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Precision, recall, F1 per label; micro/macro F1; macro F1 per language."""
    from training.data import DataError, load_samples

    try:
        model = Registry(model_dir).load()
        samples = load_samples(data).samples
    except (ArtifactError, DataError) as exc:
        _fail(str(exc))
    from training.evaluate import evaluate_model

    with _ProgressBar() as progress:
        metrics = evaluate_model(model, samples, progress)
    if as_json:
        print(json.dumps(metrics, ensure_ascii=False))
    else:
        _print_metrics(metrics, to_stderr=False)


@models_app.command("list")
def models_list(model_dir: ModelDir = None) -> None:
    """All versions, oldest first; the current one is marked with *."""
    registry = Registry(model_dir)
    try:
        entries, pointer_error = registry.catalogue()
    except ArtifactError as exc:  # the versions folder itself cannot be listed
        _fail(str(exc))
    if pointer_error is not None:  # the versions are still worth listing
        err.print(f"warning: {pointer_error}", highlight=False, markup=False)
    if not entries:
        err.print(
            f"no model versions in {registry.root}; run `triage train`",
            highlight=False,
            markup=False,
        )
        return
    for entry in entries:
        mark = "*" if entry.current else " "
        if entry.manifest is None:
            print(f"{mark} {entry.version}  unreadable: {entry.error}")
            continue
        macro = entry.manifest.get("metrics", {}).get("macro_f1")
        created = entry.manifest.get("created_at")
        print(f"{mark} {entry.version}  macro_f1={macro}  created_at={created}")


@models_app.command("show")
def models_show(version: str, model_dir: ModelDir = None) -> None:
    """Print a version's manifest."""
    try:
        print(json.dumps(Registry(model_dir).manifest(version), indent=2, ensure_ascii=False))
    except ArtifactError as exc:
        _fail(str(exc))


@models_app.command("use")
def models_use(version: str, model_dir: ModelDir = None) -> None:
    """Make VERSION current (after verifying its checksum)."""
    registry = Registry(model_dir)
    try:
        registry.load(version)  # refuse a version that would not load, not only a bad checksum
        registry.promote(version)
    except ArtifactError as exc:
        _fail(str(exc))
    print(version)


@models_app.command("prune")
def models_prune(
    keep: Annotated[
        int, typer.Option("--keep", min=1, help="How many of the newest served versions to keep.")
    ],
    model_dir: ModelDir = None,
) -> None:
    """Delete all but the KEEP newest versions that were ever current (never the current one).

    Versions never promoted (rejected challengers, trainings held back) go too.
    """
    try:
        removed = Registry(model_dir).prune(keep)
    except ArtifactError as exc:
        _fail(str(exc))
    for version in removed:
        print(f"removed {version}")


@app.command()
def retrain(
    model_dir: ModelDir = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Request store (default: $TRIAGE_DATABASE_URL or var/triage.sqlite3).",
        ),
    ] = None,
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="Base training file(s).")
    ] = None,
    eval_path: Annotated[
        Path | None, typer.Option("--eval", help="Frozen evaluation file.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Training config TOML.")] = None,
    macro_tolerance: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="How far macro F1 may fall below the champion's."),
    ] = 0.01,
    label_tolerance: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="How far any label's F1 may fall.")
    ] = 0.03,
    holdout: Annotated[
        float,
        typer.Option(
            min=0.0, max=0.9, help="Share of reviewed texts held out for evaluation (by text)."
        ),
    ] = 0.2,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Everything but promotion.")] = False,
) -> None:
    """Train a challenger on samples + reviews; promote it only if it is not worse."""
    from service.settings import Settings, SettingsError, default_database_url
    from training.data import DataError
    from training.retrain import Gate, RetrainLocked
    from training.retrain import retrain as run_retrain
    from triage_cli.retrain import reviewed_from_store

    url = database_url or os.environ.get("TRIAGE_DATABASE_URL") or default_database_url()
    try:  # as the service checks it, before the lock and the samples: a store it cannot use
        Settings.from_env({"TRIAGE_DATABASE_URL": url})
    except SettingsError as exc:
        _fail(f"{exc} (--database-url or TRIAGE_DATABASE_URL)")
    train_config = _config(config)
    try:
        with _ProgressBar() as progress:
            result = run_retrain(
                # Read under the lock: a run refused for another one reads nothing.
                lambda: reviewed_from_store(url),
                model_dir,
                data,
                eval_path,
                train_config,
                Gate(macro_tolerance, label_tolerance),
                holdout,
                dry_run,
                progress,
            )
    except RetrainLocked as exc:
        _fail(str(exc), code=3)
    except (DataError, ArtifactError, OSError, ValueError) as exc:
        _fail(str(exc))
    except Exception as exc:  # a store that cannot be read, a crash mid-training
        _fail(f"retraining failed, current model unchanged: {exc}")
    verdicts = {
        "promoted": f"PROMOTED {result.challenger_version} (was {result.champion_version})",
        "kept": f"KEPT champion {result.champion_version}; challenger "
        f"{result.challenger_version} held back",
        "dry_run": f"DRY RUN: challenger {result.challenger_version} "
        f"{'would pass' if not result.reasons else 'would be held back'}",
    }
    err.print(verdicts[result.status], highlight=False, markup=False)
    for reason in result.reasons:
        err.print(f"  - {reason}", highlight=False, markup=False)
    err.print(f"report: {result.report_dir / 'report.md'}", highlight=False, markup=False)
    print(result.status)


def default_model_reason(registry: Registry) -> str | None:
    """Why ``serve`` must train a default model first, or None when the current one will do.

    It must when the registry is empty, or when its current model was written in another
    artifact format than this code reads (the older versions stay in the registry). A model
    refused for another reason (a changed file) is not replaced: the service reports it.
    """
    try:
        current = registry.current()
    except ArtifactError:  # an unreadable CURRENT is reported by the service, not replaced
        return None
    if current is None:
        return f"no model in {registry.root} yet"
    if registry.outdated(current):
        return f"the current model {current} was written in a format this code does not read"
    return None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    model_dir: ModelDir = None,
) -> None:
    """Start the triage service; trains a default model first if there is none it can read."""
    from service.settings import Settings, SettingsError

    try:  # before a default model is trained: a wrong setting should not cost a minute first
        Settings.from_env()
    except SettingsError as exc:
        _fail(str(exc), 2)
    registry = Registry(model_dir)
    if why := default_model_reason(registry):
        err.print(f"{why}: training a default model from data/samples (about a minute) …")
        train_default(model_dir)
    from service.server import serve as run_server

    run_server(host=host, port=port, workers=workers, model_dir=registry.root)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
