"""The ``triage`` command line end to end: train → predict → evaluate → models."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from model import Registry
from tests.conftest import SAMPLES
from training.data import load_samples
from training.evaluate import evaluate_model
from triage_cli import predict as predict_io
from triage_cli.main import _sigterm_unwinds, _Terminated, app, default_model_reason

runner = CliRunner()


def _subset(src: Path, dst: Path, n: int) -> Path:
    dst.write_text(
        "".join(src.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8"
    )
    return dst


@pytest.fixture(scope="module")
def cli_training(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Result]:
    """A registry trained through the CLI on a slice of the samples (fast), and the run."""
    # A long folder name: no line of the run may be folded at 80 columns.
    root = tmp_path_factory.mktemp("cli-with-a-folder-name-long-enough-to-be-folded-by-a-console")
    train = _subset(SAMPLES / "train.jsonl", root / "train.jsonl", 300)
    evaluation = _subset(SAMPLES / "eval.jsonl", root / "eval.jsonl", 80)
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(train),
            "--eval",
            str(evaluation),
            "--model-dir",
            str(root / "models"),
        ],
    )
    assert result.exit_code == 0, result.output
    version = result.stdout.strip().splitlines()[-1]
    assert (root / "models" / "CURRENT").read_text().strip() == version
    return root / "models", evaluation, result


@pytest.fixture(scope="module")
def cli_registry(cli_training: tuple[Path, Path, Result]) -> tuple[Path, Path]:
    models, evaluation, _ = cli_training
    return models, evaluation


def test_train_never_folds_a_path_in_its_messages(cli_training) -> None:
    # Without a terminal rich folded at 80 columns, breaking the path in two.
    models, _, result = cli_training
    version = result.stdout.strip().splitlines()[-1]
    assert f"version {version} is now current ({models / 'versions' / version})\n" in (
        result.stderr
    )


def test_a_held_back_training_still_ends_stdout_with_its_version(tmp_path) -> None:
    # No security request: saved, not made current, exit 1; the README promises the id.
    lines = (SAMPLES / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    thin = tmp_path / "thin.jsonl"
    thin.write_text("".join([x for x in lines if "security" not in x][:40]), encoding="utf-8")
    evaluation = _subset(SAMPLES / "eval.jsonl", tmp_path / "eval.jsonl", 40)
    models = tmp_path / "models"
    result = runner.invoke(
        app,
        ["train", "--data", str(thin), "--eval", str(evaluation), "--model-dir", str(models)],
    )
    assert result.exit_code == 1, result.output
    assert "NOT made current" in result.stderr
    assert result.stdout.strip().splitlines()[-1] == Registry(models).list_versions()[-1]


def test_predict_jsonl_keeps_order_ids_and_one_line_per_record(cli_registry, tmp_path) -> None:
    models, _ = cli_registry
    rows = [
        '{"id": "a", "text": "Bitte 2FA für das Admin-Portal", "partner": "x"}',
        '{"text": "How do I set up holiday routing?"}',
        '{"id": "c", "text": "   "}',
        "this is not json",
        '{"id": "e", "text": "' + "Passwort " * 12000 + '"}',
        '{"id": "f", "text": "🔥🔥🔥 \\u0007"}',
        '{"id": "g"}',
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", "--model-dir", str(models), str(path)])
    # Every line is written; the exit status says that two of them are errors.
    assert result.exit_code == 1, result.output
    assert "2 record(s) could not be read" in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", 2, "c", 4, "e", "f", "g"]
    first = lines[0]
    assert set(first) >= {
        "id",
        "language",
        "labels",
        "scores",
        "outcome",
        "rationale",
        "explanation",
    }
    assert set(first["scores"]) == {"msp_configurable", "security", "broad_value"}
    assert "security" in first["labels"]
    assert "empty_text" in lines[2]["flags"]
    assert "error" in lines[3] and "broken JSON" in lines[3]["error"]
    assert "truncated" in lines[4]["flags"]
    assert "field 'text'" in lines[6]["error"]


def test_predict_csv_and_stdin(cli_registry, tmp_path) -> None:
    models, _ = cli_registry
    csv_path = tmp_path / "in.csv"
    csv_path.write_text(
        'id,text\n7,"Kunde möchte andere Wartemusik, geht das?"\n8,Tetris\n', encoding="utf-8"
    )
    result = runner.invoke(app, ["predict", "--model-dir", str(models), str(csv_path)])
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == ["7", "8"]
    result = runner.invoke(
        app,
        ["predict", "--model-dir", str(models), "-", "--no-explain"],
        input='{"text": "Please add SSO"}\n',
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            'id,text\n1,"Bitte 2FA fuer das Admin-Portal\n2,Hold music per queue\n3,Wartemusik\n',
            "in.csv:2: a quoted field starts here and is never closed",
        ),
        (
            'id,text\n1,"zwei\nZeilen"\n2,x\n3,"a ""q"" b\n4,y\n',
            "in.csv:5: a quoted field starts here and is never closed",
        ),
        ('id,text\n1,x\n2,"ab"c\n3,y\n', "in.csv:3: broken CSV quoting"),
    ],
    ids=["unclosed-quote", "unclosed-after-multiline-row", "text-after-closing-quote"],
)
def test_a_csv_with_broken_quoting_names_the_line_and_reads_nothing(
    tmp_path: Path, content: str, expected: str
) -> None:
    # Before, every row after an unclosed quote became part of one text, with exit 0.
    path = tmp_path / "in.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(predict_io.InputError) as caught:
        predict_io.read_records(str(path))
    assert str(caught.value).startswith(f"{tmp_path / expected}")


def test_a_record_whose_text_is_no_string_says_what_it_is_in_json_words(tmp_path) -> None:
    path = tmp_path / "in.jsonl"
    values = ["null", "5", "1.5", "true", '["x"]', '{"x": 1}']
    path.write_text("".join(f'{{"text": {v}}}\n' for v in values), encoding="utf-8")
    errors = [record.error for record in predict_io.read_records(str(path))]
    found = ["null", "a number", "a number", "true", "an array", "an object"]
    assert errors == [
        f"{path}:{n}: field 'text': expected a string, got {what}"
        for n, what in enumerate(found, start=1)
    ]  # before: "a NoneType", "a int", "a float", "a bool", "a list", "a dict"


def test_predict_refuses_a_csv_with_an_unclosed_quote(cli_registry, tmp_path) -> None:
    models, _ = cli_registry
    path = tmp_path / "u.csv"
    path.write_text('id,text\n1,"Bitte 2FA\n2,Hold music per queue\n', encoding="utf-8")
    result = runner.invoke(app, ["predict", "--model-dir", str(models), "--no-explain", str(path)])
    assert result.exit_code == 2
    assert f"{path}:2: a quoted field starts here and is never closed" in result.stderr
    assert result.stdout == ""


def test_predict_rejects_a_csv_without_text_column(cli_registry, tmp_path) -> None:
    models, _ = cli_registry
    path = tmp_path / "bad.csv"
    path.write_text("id,body\n1,hello\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", "--model-dir", str(models), str(path)])
    assert result.exit_code == 2
    assert "needs a 'text' column" in result.output


def test_evaluate_json(cli_registry) -> None:
    models, evaluation = cli_registry
    result = runner.invoke(
        app, ["evaluate", "--model-dir", str(models), "--data", str(evaluation), "--json"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert {"macro_f1", "micro_f1", "per_label", "per_language"} <= set(metrics)
    assert set(metrics["per_language"]) == {"de", "en"}
    assert 0.0 <= metrics["macro_f1"] <= 1.0
    # Everything that runs long shows progress; evaluate showed none while it scored.
    assert "scoring" in result.stderr and "80/80" in result.stderr
    model = Registry(models).load()
    samples = load_samples(evaluation).samples
    assert metrics == evaluate_model(model, samples)


def test_models_list_show_use_prune(cli_registry, tmp_path) -> None:
    models, _ = cli_registry
    listed = runner.invoke(app, ["models", "list", "--model-dir", str(models)])
    assert listed.exit_code == 0 and listed.stdout.startswith("* ")
    version = listed.stdout.split()[1]
    shown = runner.invoke(app, ["models", "show", version, "--model-dir", str(models)])
    assert json.loads(shown.stdout)["version"] == version
    assert runner.invoke(app, ["models", "use", version, "--model-dir", str(models)]).exit_code == 0
    missing = runner.invoke(app, ["models", "use", "nope", "--model-dir", str(models)])
    assert missing.exit_code == 1 and "no model version 'nope'" in missing.output
    pruned = runner.invoke(app, ["models", "prune", "--keep", "1", "--model-dir", str(models)])
    assert pruned.exit_code == 0


def test_train_reports_bad_data_with_file_and_line(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "x", "labels": ["nope"], "lang": "de"}\n', encoding="utf-8")
    result = runner.invoke(app, ["train", "--data", str(bad), "--model-dir", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert f"{bad}:1: field 'labels'" in result.output
    assert not (tmp_path / "m" / "CURRENT").exists()


def test_serve_refuses_a_wrong_setting_before_training_anything(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", "mysql://root@db/triage")
    empty = tmp_path / "models"
    result = runner.invoke(app, ["serve", "--model-dir", str(empty)])
    assert result.exit_code == 2
    assert "TRIAGE_DATABASE_URL='mysql://root@db/triage': 'mysql' is not supported" in (
        result.output
    )
    assert not empty.exists()  # no default model was trained first


def test_retrain_refuses_a_store_url_it_cannot_use_before_touching_the_registry(
    tmp_path,
) -> None:
    models = tmp_path / "models"
    result = runner.invoke(
        app,
        ["retrain", "--database-url", "mysql://root:secret@db/triage", "--model-dir", str(models)],
    )
    assert result.exit_code == 1
    assert "'mysql' is not supported; expected sqlite:///PATH or postgresql" in result.output
    assert "secret" not in result.output
    assert not models.exists()  # no lock taken, no samples read, nothing trained


def test_serve_trains_a_default_model_only_when_none_can_be_read(cli_registry, tmp_path) -> None:
    models, _ = cli_registry
    assert default_model_reason(Registry(models)) is None
    assert "no model" in str(default_model_reason(Registry(tmp_path / "empty")))
    # A registry whose current model an older version of this code wrote.
    old = tmp_path / "old"
    shutil.copytree(models, old)
    current = Registry(old).current()
    manifest_path = old / "versions" / str(current) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format": manifest["format"] - 1}))
    assert f"current model {current} was written in a format" in str(
        default_model_reason(Registry(old))
    )


def test_train_names_a_missing_config_and_the_option(tmp_path) -> None:
    missing = tmp_path / "nothere.toml"
    result = runner.invoke(
        app, ["train", "--config", str(missing), "--model-dir", str(tmp_path / "m")]
    )
    assert result.exit_code == 1
    assert f"error: --config {missing}: no such config file" in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("requested", "expected"), [(-1, 2), (0, 1), (1, 1), (2, 2), (24, 2), (1000, 2)]
)
def test_predict_starts_no_more_workers_than_cores(requested: int, expected: int) -> None:
    assert predict_io.worker_count(requested, cores=2)[0] == expected


def test_predict_caps_jobs_at_the_cores_with_a_note(cli_registry, tmp_path, monkeypatch) -> None:
    # --jobs 24 on a 2-core machine started 24 forked copies of the model.
    models, _ = cli_registry
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "Bitte 2FA für das Admin-Portal"}\n', encoding="utf-8")
    used = []
    real = predict_io.write_predictions

    def spy(*args: object, n_jobs: int, **kwargs: object) -> int:
        used.append(n_jobs)
        return real(*args, n_jobs=n_jobs, **kwargs)

    monkeypatch.setattr(predict_io, "usable_cores", lambda: 2)
    monkeypatch.setattr(predict_io, "write_predictions", spy)
    result = runner.invoke(app, ["predict", "--model-dir", str(models), "--jobs", "24", str(path)])
    assert result.exit_code == 0, result.output
    assert used == [2]
    assert "note: --jobs 24 is more than the 2 core(s) here; using 2" in result.stderr


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_predict_ends_cleanly_on_sigterm(cli_registry, tmp_path) -> None:
    # Killed outright, it exited -15 in silence and each worker printed a BrokenPipeError
    # traceback.
    models, _ = cli_registry
    texts = [s.text for s in load_samples(SAMPLES / "eval.jsonl").samples]
    path = tmp_path / "many.jsonl"
    path.write_text(
        "".join(json.dumps({"text": texts[i % len(texts)]}) + "\n" for i in range(3000)),
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "triage_cli.main", "predict", "--jobs", "2"]
    run = subprocess.Popen(
        [*command, "--model-dir", str(models), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not _children(run.pid) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.poll() is None, "finished before its workers could be seen"
    workers = _children(run.pid)
    run.send_signal(signal.SIGTERM)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == [
        "error: terminated; the lines written so far are complete, the rest are missing"
    ]
    assert all(json.loads(line)["id"] for line in stdout.splitlines())  # complete lines
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


class _SignalsItselfWhenCollected:
    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_where_python_ignores_exceptions_still_terminates(capsys) -> None:
    # Sent while the pool forked its workers, the signal's exception was raised in an at-fork
    # hook, where Python prints "Exception ignored", a traceback, and goes on: the run
    # finished and exited 0. A __del__ is another such place.
    before = signal.getsignal(signal.SIGTERM), sys.unraisablehook
    finished = False
    with pytest.raises(_Terminated), _sigterm_unwinds():
        _SignalsItselfWhenCollected()
        finished = True
    assert finished
    assert capsys.readouterr().err == ""
    assert (signal.getsignal(signal.SIGTERM), sys.unraisablehook) == before
