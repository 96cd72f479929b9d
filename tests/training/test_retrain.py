"""Nightly retraining: promotion on good reviews, refusal of poisoned ones, crash safety, lock."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import pytest

from model.estimator import LABELS
from model.registry import ArtifactError, Registry
from tests.conftest import SAMPLES
from training import retrain as retrain_module
from training.data import Sample, load_samples
from training.retrain import (
    Gate,
    RetrainLocked,
    ReviewedRequest,
    collect,
    holdout_unseen,
    in_holdout,
    retrain,
    retrain_lock,
)
from training.train import train

ALL = load_samples(SAMPLES / "train.jsonl").samples


def _reviews(
    samples: list[Sample], flip: float = 0.0, seed: int = 3, prefix: str = "r", month: int = 0
) -> list[ReviewedRequest]:
    rng = random.Random(seed)
    out = []
    for k, s in enumerate(samples):
        labels = s.labels
        if rng.random() < flip:
            labels = tuple(label for label in LABELS if (label in s.labels) != (rng.random() < 0.7))
        out.append(
            ReviewedRequest(
                id=f"{prefix}{k}",
                text=s.text,
                labels=labels,
                lang=s.lang,
                suggested_labels=s.labels,
                blind=k % 5 == 0,
                reviewed_at=f"2026-{month or 10 + k % 2}-{1 + k % 28:02d}T10:00:00+00:00",
            )
        )
    return out


@pytest.fixture(scope="module")
def weak_champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A registry whose champion was trained on only 250 samples."""
    root = tmp_path_factory.mktemp("retrain")
    base = root / "base.jsonl"
    base.write_text(
        "".join(json.dumps(s.to_record(), ensure_ascii=False) + "\n" for s in ALL[:250]),
        encoding="utf-8",
    )
    train(data_paths=[base], model_dir=root / "models")
    return root / "models", base


def _copy_registry(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_good_reviews_lead_to_a_promotion(weak_champion, tmp_path) -> None:
    models = _copy_registry(weak_champion[0], tmp_path / "models")
    champion = Registry(models).current()
    result = retrain(_reviews(ALL[250:1000]), models, [weak_champion[1]])
    assert result.status == "promoted", result.reasons
    assert Registry(models).current() == result.challenger_version != champion
    report = json.loads((result.report_dir / "report.json").read_text())
    assert report["reviews"]["reviews"] == 750
    assert report["data"]["holdout"] > 0 and report["data"]["holdout_in_yardstick"] is True
    assert report["notes"] == []
    assert Registry(models).manifest(result.challenger_version)["holdout"]["rule"] == "text"
    assert {p.name for p in result.report_dir.iterdir()} >= {
        "report.json",
        "report.md",
        "compare.png",
        "data_mix.png",
        "agreement.png",
    }


def test_poisoned_reviews_are_refused_by_the_gate(weak_champion, tmp_path) -> None:
    models = _copy_registry(weak_champion[0], tmp_path / "models")
    champion = Registry(models).current()
    result = retrain(
        _reviews(ALL[250:700], flip=0.4),
        models,
        [weak_champion[1]],
        gate=Gate(macro_f1_tolerance=0.0, label_f1_tolerance=0.0),
    )
    assert result.status == "kept"
    assert result.reasons
    assert Registry(models).current() == champion
    assert "held the challenger back" in (result.report_dir / "report.md").read_text()


def test_dry_run_never_promotes(weak_champion, tmp_path) -> None:
    models = _copy_registry(weak_champion[0], tmp_path / "models")
    champion = Registry(models).current()
    result = retrain(_reviews(ALL[250:600]), models, [weak_champion[1]], dry_run=True)
    assert result.status == "dry_run"
    assert Registry(models).current() == champion


def test_a_missing_model_directory_is_refused_and_an_empty_one_gets_a_first_model(
    weak_champion, tmp_path
) -> None:
    # A typo in TRIAGE_MODEL_DIR used to start a registry of its own, promote into it and
    # exit 0, while the service went on serving the old model.
    typo = tmp_path / "modles"
    with pytest.raises(ArtifactError, match=r"no model registry at .*modles"):
        retrain(_reviews(ALL[250:300]), typo, [weak_champion[1]])
    assert not typo.exists()
    empty = tmp_path / "models"
    empty.mkdir()
    result = retrain(_reviews(ALL[250:300]), empty, [weak_champion[1]])
    assert result.status == "promoted", result.reasons
    assert Registry(empty).current() == result.challenger_version


def test_crash_during_training_leaves_registry_consistent(
    weak_champion, tmp_path, monkeypatch
) -> None:
    models = _copy_registry(weak_champion[0], tmp_path / "models")
    before = (Registry(models).current(), Registry(models).list_versions())

    def crash(*args, **kwargs):
        raise MemoryError("simulated crash while fitting")

    monkeypatch.setattr(retrain_module, "fit_estimator", crash)
    with pytest.raises(MemoryError):
        retrain(_reviews(ALL[250:300]), models, [weak_champion[1]])
    assert (Registry(models).current(), Registry(models).list_versions()) == before
    Registry(models).load()  # still loads and verifies
    with retrain_lock(models):  # the lock was released
        pass


def test_thin_training_data_is_never_promoted(weak_champion, tmp_path) -> None:
    # As with `triage train`: without enough requests of a label the challenger cannot learn
    # it, whatever the gate would say (here there is no security request at all).
    models = _copy_registry(weak_champion[0], tmp_path / "models")
    champion = Registry(models).current()
    no_security = [s for s in ALL if "security" not in s.labels]
    base = tmp_path / "base.jsonl"
    base.write_text(
        "".join(json.dumps(s.to_record(), ensure_ascii=False) + "\n" for s in no_security[:300]),
        encoding="utf-8",
    )
    result = retrain(_reviews(no_security[300:400]), models, [base], gate=Gate(1.0, 1.0))
    assert result.status == "kept"
    assert any("0 requests with 'security'" in reason for reason in result.reasons)
    assert Registry(models).current() == champion


def test_without_a_current_model_among_versions_there_is_no_champion(
    weak_champion, tmp_path
) -> None:
    models = _copy_registry(weak_champion[0], tmp_path / "models")
    (models / "CURRENT").unlink()
    with pytest.raises(ArtifactError, match="none is current"):
        retrain(_reviews(ALL[250:300]), models, [weak_champion[1]])
    assert not (models / "CURRENT").exists()


def _another_version(registry: Registry) -> str:
    """A copy of the current version under another id: what an operator might roll back to."""
    champion = registry.current()
    chosen = f"{champion}-chosen"
    shutil.copytree(registry.version_dir(champion), registry.version_dir(chosen))
    manifest_path = registry.version_dir(chosen) / "manifest.json"
    manifest_path.write_text(
        json.dumps({**json.loads(manifest_path.read_text()), "version": chosen})
    )
    return chosen


def test_a_model_chosen_during_the_run_is_not_overwritten(weak_champion, tmp_path) -> None:
    models = _copy_registry(weak_champion[0], tmp_path / "models")
    registry = Registry(models)
    chosen = _another_version(registry)

    def operator_rolls_back(stage: str, done: int, total: int) -> None:
        if stage == "evaluation" and done == 0:  # while the challenger is being scored
            registry.promote(chosen)

    result = retrain(
        _reviews(ALL[250:1000]), models, [weak_champion[1]], progress=operator_rolls_back
    )
    assert result.status == "kept"
    assert any("CURRENT changed to" in reason for reason in result.reasons)
    assert registry.current() == chosen
    report = json.loads((result.report_dir / "report.json").read_text())
    assert report["status"] == "kept" and report["gate_passed"] is False


def test_a_model_chosen_while_the_report_is_written_is_not_overwritten(
    weak_champion, tmp_path, monkeypatch
) -> None:
    import training.retrain as retraining

    models = _copy_registry(weak_champion[0], tmp_path / "models")
    registry = Registry(models)
    chosen = _another_version(registry)
    write_report = retraining.write_run_report
    calls = []

    def operator_rolls_back_meanwhile(registry_: Registry, run_id: str, report: dict) -> Path:
        calls.append(report["status"])
        written = write_report(registry_, run_id, report)
        if len(calls) == 1:  # after the last check before the lock: only the lock sees it
            registry.promote(chosen)
        return written

    monkeypatch.setattr(retraining, "write_run_report", operator_rolls_back_meanwhile)
    result = retrain(_reviews(ALL[250:1000]), models, [weak_champion[1]])
    assert calls == ["promoted", "kept"]  # the report said promoted, then is rewritten
    assert result.status == "kept"
    assert any(f"CURRENT changed to {chosen}" in reason for reason in result.reasons)
    assert registry.current() == chosen
    report = json.loads((result.report_dir / "report.json").read_text())
    assert report["status"] == "kept" and report["gate_passed"] is False
    assert [p.name for p in (models / "runs").iterdir()] == [result.run_id]  # no leftovers


def test_a_second_concurrent_run_is_refused(tmp_path) -> None:
    with retrain_lock(tmp_path), pytest.raises(RetrainLocked, match="another retraining run"):
        retrain([], tmp_path)


def test_collect_latest_review_wins_and_holdout_is_never_trained_on() -> None:
    base = ALL[:20]
    text = ALL[0].text
    reviewed = [
        ReviewedRequest("a", text, ("security",), "de", (), False, "2026-01-01T00:00:00+00:00"),
        ReviewedRequest(
            "b", text + " ", ("broad_value",), "de", (), False, "2026-02-01T00:00:00+00:00"
        ),
        ReviewedRequest(
            "c", "Nous voulons un jeu", (), "other", (), False, "2026-02-01T00:00:00+00:00"
        ),
    ] + _reviews(ALL[100:300])
    training, holdout, stats = collect(base, reviewed, holdout_share=0.2)
    merged = [s for s in training + holdout if s.text.strip() == text]
    assert len(merged) == 1 and merged[0].labels == ("broad_value",)
    assert stats["skipped_language"] == 1 and stats["merged_duplicates"] == 1
    held = {s.text for s in holdout}
    assert held and not held & {s.text for s in training}
    assert all(in_holdout(s.text, 0.2) for s in holdout)


def _keys(samples: list[Sample]) -> set[str]:
    return {" ".join(s.text.lower().split()) for s in samples}


def test_the_same_wording_stays_out_of_the_holdout_once_trained_on() -> None:
    # Night 1 trains on most of 300 reviewed texts; night 2 the same wordings arrive again as
    # new requests (other ids, reviewed later, so they win the merge). A text night 1 trained
    # on, and so the champion too, must not be held out on night 2.
    base = ALL[:50]
    night1 = _reviews(ALL[300:600])
    trained1, held1, _ = collect(base, night1, holdout_share=0.2)
    night2 = night1 + _reviews(ALL[300:600], prefix="again-", month=12)
    trained2, held2, stats = collect(base, night2, holdout_share=0.2)
    assert stats["merged_duplicates"] == 300
    assert all(s.id.startswith("review-again-") for s in held2)
    assert held2 and not _keys(held2) & _keys(trained1)
    assert _keys(held2) == _keys(held1) and _keys(trained2) == _keys(trained1)


def test_reviews_of_texts_in_the_training_files_are_never_held_out() -> None:
    # Every model so far was trained on the training files: their texts are no yardstick.
    base = ALL[:300]
    reviewed = _reviews(ALL[:300], flip=0.3) + _reviews(ALL[300:400], prefix="new-")
    training, holdout, stats = collect(base, reviewed, holdout_share=0.2)
    assert holdout and not _keys(holdout) & _keys(base)
    assert all(s.id.startswith("review-new-") for s in holdout)
    assert stats["samples_overridden"] == 300 and stats["training_reviews"] == 400 - len(holdout)
    by_text = {s.text: s for s in training}
    assert all(by_text[r.text].labels == r.labels for r in reviewed if r.text in by_text)


def _review(id_: str, text: str, labels: tuple[str, ...], lang: str, day: int) -> ReviewedRequest:
    return ReviewedRequest(id_, text, labels, lang, (), False, f"2026-11-{day:02d}T10:00:00+00:00")


def test_a_review_relabels_the_translations_of_the_sample_it_overrides() -> None:
    # A request and its translations share their labels (cross-language consistency): the
    # old labels must not keep training through the other language.
    original = Sample("o1", "Bitte Zwei-Faktor-Anmeldung", ("security",), "de")
    english = Sample("t1", "Please add two-factor login", ("security",), "en", {"source_id": "o1"})
    other = Sample("o2", "Wartemusik je Warteschlange", ("msp_configurable",), "de")
    other_en = Sample(
        "t2", "Hold music per queue", ("msp_configurable",), "en", {"source_id": "o2"}
    )
    base = [original, english, other, other_en]
    reviewed = [
        _review("1", original.text, ("security", "broad_value"), "de", 1),
        _review("2", other_en.text, (), "en", 2),
    ]
    training, _, stats = collect(base, reviewed, holdout_share=0.0)
    by_text = {s.text: s for s in training}
    assert by_text[english.text] == Sample(
        "t1", english.text, ("security", "broad_value"), "en", {"source_id": "o1"}
    )
    assert by_text[original.text].id == "review-1"
    assert by_text[other.text] == Sample("o2", other.text, (), "de")  # an original follows too
    assert by_text[other_en.text].id == "review-2"
    assert stats["translations_relabelled"] == 2 and stats["samples_overridden"] == 2


def test_in_a_group_each_reviewed_text_keeps_its_review_and_the_rest_take_the_latest() -> None:
    original = Sample("o1", "Bitte Zwei-Faktor-Anmeldung", ("security",), "de")
    english = Sample("t1", "Please add two-factor login", ("security",), "en", {"source_id": "o1"})
    second = Sample("t2", "Two-step sign-in, please", ("security",), "en", {"source_id": "o1"})
    reviewed = [
        _review("2", english.text, ("broad_value",), "en", 2),
        _review("1", original.text, ("security", "broad_value"), "de", 1),
    ]
    training, _, _ = collect([original, english, second], reviewed, holdout_share=0.2)
    labels = {s.text: s.labels for s in training}
    assert labels == {
        original.text: ("security", "broad_value"),
        english.text: ("broad_value",),
        second.text: ("broad_value",),
    }


@pytest.mark.parametrize(
    "manifest, share, unseen",
    [
        ({}, 0.2, True),  # `triage train`: data files only
        ({"retrain_run": "x"}, 0.2, False),  # retrained when the holdout went by request id
        ({"retrain_run": "x", "holdout": {"rule": "text", "share": 0.2}}, 0.2, True),
        ({"retrain_run": "x", "holdout": {"rule": "text", "share": 0.3}}, 0.2, True),
        ({"retrain_run": "x", "holdout": {"rule": "text", "share": 0.1}}, 0.2, False),
        ({"retrain_run": "x", "holdout": {"rule": "id", "share": 0.2}}, 0.2, False),
    ],
    ids=["train", "retrained-by-id", "same-share", "larger-share", "smaller-share", "other-rule"],
)
def test_whether_the_champion_trained_on_none_of_the_holdout(manifest, share, unseen) -> None:
    assert holdout_unseen(manifest, share) is unseen


def test_a_larger_share_only_adds_texts_to_the_holdout() -> None:
    texts = [s.text for s in ALL[:500]]
    small = {t for t in texts if in_holdout(t, 0.1)}
    large = {t for t in texts if in_holdout(t, 0.3)}
    assert small and small < large
    assert in_holdout("Bitte CSV-Export", 0.5) == in_holdout("  bitte   csv-export ", 0.5)


def test_a_champion_retrained_by_request_id_is_not_judged_on_the_holdout(
    weak_champion, tmp_path
) -> None:
    # Retrained before the holdout went by text, it may have trained on texts now held out:
    # judged on them it would look better than it is and keep winning every night.
    models = _copy_registry(weak_champion[0], tmp_path / "models")
    registry = Registry(models)
    path = registry.version_dir(registry.current()) / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "retrain_run": "old"}))
    result = retrain(_reviews(ALL[250:600]), models, [weak_champion[1]], dry_run=True)
    report = result.report
    assert report["data"]["holdout"] > 0 and report["data"]["holdout_in_yardstick"] is False
    assert report["data"]["yardstick"]["n"] == report["metrics"]["challenger"]["eval"]["n"]
    assert report["metrics"]["champion"]["yardstick"] == report["metrics"]["champion"]["eval"]
    assert "may have trained on texts now held out" in report["notes"][0]
    assert "may have trained on texts now held out" in (result.report_dir / "report.md").read_text()
    manifest = registry.manifest(result.challenger_version)
    assert manifest["holdout"] == {"rule": "text", "share": 0.2}


def test_cli_retrain_from_the_store_is_picked_up_by_the_service(weak_champion, tmp_path) -> None:
    """Reviews stored through the API → `triage retrain` promotes → GET /v1/model reports it."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from service.app import create_app
    from service.settings import Settings
    from triage_cli.main import app as cli

    models = _copy_registry(weak_champion[0], tmp_path / "models")
    database = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    settings = Settings(
        model_dir=models,
        database_url=database,
        api_keys=("k",),
        api_key_file=tmp_path / "api-key",
        reload_interval=0,
    )
    auth = {"X-API-Key": "k"}
    with TestClient(create_app(settings)) as client:
        champion = client.get("/v1/model").json()["version"]
        for k, sample in enumerate(ALL[250:850]):
            title = {"title": "Betreff: siehe Text"} if k == 0 else {}
            created = client.post(
                "/v1/requests",
                headers=auth,
                json={"text": sample.text, "partner": f"p{k % 7}", **title},
            )
            assert created.status_code == 201, created.text
            review = client.post(
                f"/v1/requests/{created.json()['id']}/review",
                headers=auth,
                json={"labels": list(sample.labels), "reviewer": "jd"},
            )
            assert review.status_code in (200, 201), review.text
        # Training reads what the model saw at intake, as the export writes it: title first.
        from triage_cli.retrain import reviewed_from_store

        texts = [r.text for r in reviewed_from_store(database)]
        assert f"Betreff: siehe Text\n\n{ALL[250].text}" in texts
        result = CliRunner().invoke(
            cli,
            [
                "retrain",
                "--model-dir",
                str(models),
                "--database-url",
                database,
                "--data",
                str(weak_champion[1]),
            ],
        )
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().splitlines()[-1] == "promoted"
        assert client.post("/v1/model/reload", headers=auth).status_code in (200, 202)
        for _ in range(100):
            version = client.get("/v1/model").json()["version"]
            if version != champion:
                break
            time.sleep(0.1)
        assert version == Registry(models).current() != champion


def test_cli_retrain_refuses_a_second_run(tmp_path) -> None:
    from typer.testing import CliRunner

    from triage_cli.main import app as cli

    (tmp_path / "s.db").touch()  # an empty file is an empty SQLite database
    with retrain_lock(tmp_path):
        result = CliRunner().invoke(
            cli,
            [
                "retrain",
                "--model-dir",
                str(tmp_path),
                "--database-url",
                f"sqlite:///{tmp_path / 's.db'}",
            ],
        )
    assert result.exit_code == 3
    assert "another retraining run" in result.output


def test_cli_retrain_refuses_a_database_that_does_not_exist(tmp_path) -> None:
    # A mistyped URL must not become a new, empty store and a retraining without reviews.
    from typer.testing import CliRunner

    from triage_cli.main import app as cli

    missing = tmp_path / "no-such-dir" / "triage.sqlite3"
    result = CliRunner().invoke(
        cli, ["retrain", "--model-dir", str(tmp_path), "--database-url", f"sqlite:///{missing}"]
    )
    assert result.exit_code == 1
    assert f"no database at {missing}" in result.output
    assert not missing.parent.exists()
