"""Bad training data fails with file, line and field, and writes nothing to the registry."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from model.estimator import LABELS
from model.registry import Registry
from tests.conftest import SAMPLES
from training.config import ConfigError, load_config
from training.data import DataError, load_many, load_samples, translation_pairs
from training.pipeline import fit_estimator, label_matrix, tune_threshold
from training.train import RegistryNotWritable, train

GOOD = {"id": "x1", "text": "Bitte 2FA für das Admin-Portal", "labels": ["security"], "lang": "de"}


def _write(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _line(record: dict[str, object]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        (b'{"id": "x2", "text": "broken", "labels": [', ":2: broken JSON"),
        (
            _line({**GOOD, "id": "x2", "labels": ["securty"]}),
            ":2: field 'labels': unknown label(s) 'securty'",
        ),
        (_line({**GOOD, "id": "x2", "text": "   "}), ":2: field 'text': is empty"),
        (
            _line({"id": "x2", "text": "no labels here", "lang": "en"}),
            ":2: field 'labels': missing",
        ),
        (_line({**GOOD, "id": "x2", "lang": "fr"}), ":2: field 'lang': expected one of de, en"),
        (
            '{"id": "x2", "text": "Gebühr", "labels": [], "lang": "de"}'.encode("latin-1"),
            ":2: not UTF-8",
        ),
        (_line({**GOOD, "labels": []}), ":2: field 'id': duplicate id 'x1' (line 1)"),
        (b"[1, 2]", ":2: expected a JSON object, got an array"),
        (
            _line({**GOOD, "id": "x2", "text": None}),
            ":2: field 'text': expected a string, got null",
        ),
        (b'{"id": "x2", "text": "\\ud800 2FA", "labels": [], "lang": "en"}', ":2: field 'text'"),
        (b'{"id": ' + b"9" * 5000 + b"}", ":2: unreadable JSON"),
        (b"[" * 100_000 + b"]" * 100_000, ":2: unreadable JSON"),
        (_line({**GOOD, "id": True}), ":2: field 'id': expected a non-empty string or whole"),
    ],
    ids=[
        "broken-json",
        "unknown-label",
        "empty-text",
        "missing-field",
        "bad-lang",
        "wrong-encoding",
        "duplicate-id",
        "not-an-object",
        "null-text",
        "lone-surrogate",
        "huge-number",
        "deep-nesting",
        "boolean-id",
    ],
)
def test_bad_training_line_names_file_line_and_problem(
    tmp_path: Path, bad_line: bytes, expected: str
) -> None:
    path = _write(tmp_path, [_line(GOOD), bad_line])
    with pytest.raises(DataError) as caught:
        load_samples(path)
    assert f"{path}{expected}" in str(caught.value)


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    path = _write(tmp_path, [b"{", _line({**GOOD, "labels": ["nope"]}), b"[]"])
    with pytest.raises(DataError) as caught:
        load_samples(path)
    assert [p.line for p in caught.value.problems] == [1, 2, 3]


@pytest.mark.parametrize(
    "second",
    [
        lambda path: path,
        lambda path: path.parent / "sub" / ".." / path.name,
        lambda path: os.link(path, path.with_name("link.jsonl")) or path.with_name("link.jsonl"),
    ],
    ids=["same-spelling", "other-spelling", "hard-link"],
)
def test_a_training_file_given_twice_is_refused_once(
    tmp_path: Path, second: Callable[[Path], Path]
) -> None:
    # Given twice under the same spelling, every request was trained on twice, silently.
    (tmp_path / "sub").mkdir()
    path = _write(tmp_path, [_line(GOOD), _line({**GOOD, "id": "x2"})])
    with pytest.raises(DataError) as caught:
        load_many([path, second(path)])
    assert len(caught.value.problems) == 1
    assert "given twice" in str(caught.value)


def test_an_id_in_two_training_files_names_both_files_and_lines(tmp_path: Path) -> None:
    first = tmp_path / "a.jsonl"
    first.write_bytes(_line(GOOD) + b"\n")
    other = tmp_path / "b.jsonl"
    other.write_bytes(b"\n".join([_line({**GOOD, "id": "y1"}), b"", _line(GOOD)]) + b"\n")
    with pytest.raises(DataError) as caught:
        load_many([first, other])
    assert f"{other}:3: field 'id': id 'x1' is also at {first}:1" in str(caught.value)


def test_training_on_bad_data_writes_nothing(tmp_path: Path) -> None:
    bad = _write(tmp_path, [_line(GOOD), b"{oops"])
    root = tmp_path / "models"
    with pytest.raises(DataError):
        train(data_paths=[bad], eval_path=SAMPLES / "eval.jsonl", model_dir=root)
    assert Registry(root).list_versions() == []
    assert Registry(root).current() is None
    assert not root.exists() or not any(root.rglob("*.joblib"))


def test_training_refuses_eval_requests_inside_the_training_data(tmp_path: Path) -> None:
    evaluation = load_samples(SAMPLES / "eval.jsonl").samples[:3]
    leaky = _write(
        tmp_path,
        [_line({**s.to_record(), "id": f"copy-{s.id}"}) for s in evaluation] + [_line(GOOD)],
    )
    with pytest.raises(DataError, match="also in the training data"):
        train(data_paths=[leaky], eval_path=SAMPLES / "eval.jsonl", model_dir=tmp_path / "m")


def test_a_translation_of_an_unknown_request_is_named(tmp_path: Path) -> None:
    originals = load_samples(_write(tmp_path, [_line(GOOD)])).samples
    stray = tmp_path / "translations.jsonl"
    stray.write_bytes(_line({**GOOD, "id": "t1", "lang": "en", "source_id": "zz9"}))
    with pytest.raises(DataError) as caught:
        translation_pairs(originals, load_samples(stray))
    assert "translations.jsonl" in str(caught.value)
    assert "source_id" in str(caught.value) and "t1" in str(caught.value)
    assert "'zz9'" in str(caught.value)


@pytest.mark.parametrize(
    "table",
    ["[fixed_thresholds]\nmsp_configurabel = 0.5\n", "[fixed_thresholds]\nbroad_value = 1.5\n"],
    ids=["unknown-label", "not-a-probability"],
)
def test_a_bad_fixed_threshold_is_named(tmp_path: Path, table: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(table, encoding="utf-8")
    with pytest.raises(ValueError, match=r"config\.toml: fixed_thresholds\.\w+: expected"):
        load_config(path)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("nb_weight = 1.5", "nb_weight"),
        ("nb_weight = 'half'", "nb_weight"),
        ("nb_smoothing = 0", "nb_smoothing"),
        ("concept_dims = -1", "concept_dims"),
        ("concept_dims = 2.5", "concept_dims"),
        ("concept_min_df = 0", "concept_min_df"),
        ("concept_link_similarity = 0", "concept_link_similarity"),
        ("concept_link_similarity = 1.2", "concept_link_similarity"),
        ('max_chars = "abc"', "max_chars"),
        ("cv_folds = 1", "cv_folds"),
        ("C = -1.0", "C"),
        ("novelty_quantile = 5", "novelty_quantile"),
        ("use_char_ngrams = 1", "use_char_ngrams"),
        ("block_weights = [1.0, -2.0]", "block_weights"),
        ("threshold_beta = 2", "threshold_beta"),
        ("[threshold_beta]\nsecurity = 0", r"threshold_beta\.security"),
        ("C = ", "not valid TOML"),
        ("seed = -1", "seed"),
        ("seed = 4294967296", "seed"),
        ("C = inf", "C"),
        ("nb_smoothing = nan", "nb_smoothing"),
        ("block_weights = [1.0, inf]", "block_weights"),
        ("[fixed_thresholds]\nsecurity = nan", r"fixed_thresholds\.security"),
    ],
    ids=[
        "weight-above-1",
        "weight-not-a-number",
        "smoothing-zero",
        "concept-dims-negative",
        "concept-dims-fraction",
        "concept-min-df-zero",
        "link-similarity-zero",
        "link-similarity-above-1",
        "max-chars-text",
        "one-fold",
        "negative-c",
        "quantile-above-1",
        "flag-not-boolean",
        "negative-block-weight",
        "beta-not-a-table",
        "beta-zero",
        "broken-toml",
        "negative-seed",
        "seed-above-32-bits",
        "infinite-c",
        "nan-smoothing",
        "infinite-block-weight",
        "nan-threshold",
    ],
)
def test_a_bad_setting_is_named(tmp_path: Path, line: str, key: str) -> None:
    # Named before any training starts, with the file and the key.
    path = tmp_path / "config.toml"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"config\.toml: {key}"):
        load_config(path)


def test_a_config_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes("seed = 13\n# Gebühr\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"config\.toml:2: not UTF-8"):
        load_config(path)


def test_a_missing_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothere\.toml: no such config file"):
        load_config(tmp_path / "nothere.toml")


def test_fewer_requests_than_can_be_learnt_are_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One request failed inside scikit-learn's cross-validation instead.
    path = _write(tmp_path, [_line(GOOD)])
    monkeypatch.setattr("training.train.fit_estimator", _must_not_train)
    root = tmp_path / "m"
    with pytest.raises(DataError) as caught:
        train(data_paths=[path], eval_path=SAMPLES / "eval.jsonl", model_dir=root)
    assert f"{path}: the training data has 0 requests with 'msp_configurable'" in str(caught.value)
    assert "(at least 20 needed); nothing was trained" in str(caught.value)
    assert not root.exists()


def _enough_requests(tmp_path: Path) -> Path:
    samples = load_samples(SAMPLES / "train.jsonl").samples[:40]
    return _write(tmp_path, [_line(s.to_record()) for s in samples])


def test_a_model_dir_under_a_file_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It failed with "[Errno 20] Not a directory" after the whole training.
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    monkeypatch.setattr("training.train.fit_estimator", _must_not_train)
    root = tmp_path / "a-file" / "models"
    with pytest.raises(RegistryNotWritable, match="cannot take a new version") as caught:
        train(data_paths=[_enough_requests(tmp_path)], model_dir=root)
    assert str(root) in str(caught.value) and "Not a directory" in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_model_dir_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "models"
    (root / "versions").mkdir(parents=True)
    (root / "versions").chmod(0o555)
    monkeypatch.setattr("training.train.fit_estimator", _must_not_train)
    try:
        with pytest.raises(RegistryNotWritable, match="Permission denied"):
            train(data_paths=[_enough_requests(tmp_path)], model_dir=root)
    finally:
        (root / "versions").chmod(0o755)


def _must_not_train(*args: object, **kwargs: object) -> None:
    raise AssertionError("training started")


def test_fixed_thresholds_are_used_and_a_label_without_one_is_tuned() -> None:
    """The default config fixes all three thresholds; a label left out of it is F-beta tuned."""
    samples = load_samples(SAMPLES / "eval.jsonl").samples
    estimator, _ = fit_estimator(samples, load_config(n_jobs=1))
    assert estimator.thresholds == {"msp_configurable": 0.5, "security": 0.15, "broad_value": 0.5}
    fixed = {"msp_configurable": 0.5, "broad_value": 0.5}
    estimator, report = fit_estimator(samples, load_config(n_jobs=1, fixed_thresholds=fixed))
    j = LABELS.index("security")
    tuned = tune_threshold(report.oof_probabilities[:, j], label_matrix(samples)[:, j], 2.0)
    assert estimator.thresholds["security"] == tuned


def test_training_names_the_requests_of_which_it_reads_no_word(tmp_path: Path) -> None:
    # A frame rule gone wrong (a "footer" that ran to the end) left requests with no word
    # to read, and no figure showed it; training now names them.
    framed = {
        "id": "all-frame",
        "text": "Hallo zusammen,\n\nViele Grüße\nMax Mustermann\nTeamleitung Service, Muster GmbH"
        "\nTel. +49 30 1234567",
        "labels": [],
        "lang": "de",
    }
    samples = load_samples(SAMPLES / "train.jsonl").samples[:300]
    path = _write(tmp_path, [_line(s.to_record()) for s in samples] + [_line(framed)])
    result = train(data_paths=[path], eval_path=SAMPLES / "eval.jsonl", model_dir=tmp_path / "m")
    assert result.unread == ["all-frame"]
    assert Registry(tmp_path / "m").manifest(result.version)["unread_requests"] == ["all-frame"]


def test_a_model_of_too_few_examples_is_saved_but_not_made_current(tmp_path: Path) -> None:
    # Every security request left out: such a model can never flag one, and must not
    # replace the current model unasked.
    samples = [
        s for s in load_samples(SAMPLES / "train.jsonl").samples if "security" not in s.labels
    ]
    path = _write(tmp_path, [_line(s.to_record()) for s in samples[:300]])
    root = tmp_path / "m"
    result = train(data_paths=[path], eval_path=SAMPLES / "eval.jsonl", model_dir=root)
    assert not result.promoted
    assert "0 requests with 'security' (at least 20 needed)" in str(result.held_back)
    assert Registry(root).current() is None and Registry(root).list_versions() == [result.version]
