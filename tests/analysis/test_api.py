"""The analysis API: frames of samples and reviews, suggestions, quality, explanations."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis as an
from analysis import LABELS
from model import TriageModel
from training.data import DataError, load_samples
from training.evaluate import decisions, metrics_from
from training.pipeline import label_matrix

REPO_ROOT = Path(__file__).resolve().parents[2]
EVAL_PATH = REPO_ROOT / "data" / "samples" / "eval.jsonl"


@pytest.fixture(scope="module")
def samples() -> pd.DataFrame:
    return an.load_samples(EVAL_PATH)


@pytest.fixture(scope="module")
def suggestions(trained_model: TriageModel, samples: pd.DataFrame) -> pd.DataFrame:
    return an.suggest_frame(trained_model, samples)


@pytest.fixture(scope="module")
def reviews(review_store: str) -> pd.DataFrame:
    return an.load_reviews(review_store)


# --- samples ---------------------------------------------------------------------------------


def test_samples_have_one_boolean_column_per_label(samples: pd.DataFrame) -> None:
    raw = load_samples(EVAL_PATH).samples
    assert samples.index.name == "id" and samples.index.is_unique
    assert samples.index.tolist() == [s.id for s in raw]
    assert all(samples[label].dtype == bool for label in LABELS)
    assert (samples[list(LABELS)].to_numpy() == label_matrix(raw).astype(bool)).all()
    assert (samples["n_labels"] == samples[list(LABELS)].sum(axis=1)).all()
    assert set(samples["lang"]) == {"de", "en"}
    assert set(samples["file"]) == {"eval"}
    assert "voice" in samples.columns  # extra fields are kept


def test_samples_default_to_both_shipped_files() -> None:
    frame = an.load_samples()
    assert set(frame["file"]) == {"train", "eval"}
    assert len(frame) == sum(len(load_samples(p).samples) for p in an.SAMPLE_PATHS)


def test_samples_refuse_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x1", "text": "Hallo", "labels": ["nope"], "lang": "de"}\n')
    with pytest.raises(DataError, match="unknown label"):
        an.load_samples(broken)


def test_label_helpers_round_trip() -> None:
    frame = an.columns_from_lists([["security", "broad_value"], [], ["msp_configurable"]])
    assert frame.columns.tolist() == list(LABELS)
    assert an.label_sets(frame).tolist() == ["security+broad_value", "(none)", "msp_configurable"]
    prefixed = an.columns_from_lists([["security"]], prefix="suggested_")
    assert an.label_columns(prefixed, "suggested_")["security"].tolist() == [True]
    with pytest.raises(KeyError, match="suggested_msp_configurable"):
        an.label_columns(frame, "suggested_")


def test_cooccurrence_diagonal_counts_each_label(samples: pd.DataFrame) -> None:
    table = an.cooccurrence(samples)
    assert np.diag(table).tolist() == samples[list(LABELS)].sum().tolist()
    assert (table.to_numpy() == table.to_numpy().T).all()


def test_telling_terms_find_the_words_of_a_label() -> None:
    frame = pd.DataFrame(
        {
            "text": ["Passwort und Passwort-Regeln für die Anmeldung"] * 4
            + ["Wartemusik für die Anmeldung ändern"] * 4,
            "lang": "de",
            "security": [True] * 4 + [False] * 4,
        }
    )
    terms = an.telling_terms(frame, "security", lang="de", n=3)
    assert terms["term"].iloc[0] == "passwort"
    assert "für" not in set(terms["term"])  # a stop word
    assert "anmeldung" not in set(terms["term"].head(2))  # on both sides
    with pytest.raises(KeyError):
        an.telling_terms(frame, "urgent")


def test_length_bucket_edges() -> None:
    texts = pd.Series(["x" * n for n in (0, 149, 150, 299, 300, 599, 600, 5000)])
    assert an.length_bucket(texts).astype(str).tolist() == [
        "<150",
        "<150",
        "150–299",
        "150–299",
        "300–599",
        "300–599",
        "600+",
        "600+",
    ]


# --- models and suggestions ------------------------------------------------------------------


def test_versions_and_loading(trained_model_dir: Path, trained_model: TriageModel) -> None:
    versions = an.list_versions(trained_model_dir)
    assert versions.index.tolist() == [trained_model.version]
    assert bool(versions.loc[trained_model.version, "current"])
    assert 0 < versions.loc[trained_model.version, "macro_f1"] <= 1
    assert an.load_version(trained_model_dir, trained_model.version).version == (
        trained_model.version
    )
    assert an.report_pictures(trained_model_dir, trained_model.version)
    assert an.list_versions(trained_model_dir / "nothing-here").empty


def test_suggest_frame_matches_the_model(
    trained_model: TriageModel, samples: pd.DataFrame, suggestions: pd.DataFrame
) -> None:
    assert suggestions.index.equals(samples.index)
    assert suggestions.attrs["model_version"] == trained_model.version
    probabilities = trained_model.score_matrix(samples["text"].tolist())
    scores = suggestions[[f"{label}_score" for label in LABELS]].to_numpy()
    assert np.allclose(scores, probabilities, atol=1e-4)
    picked = samples.index[:5]
    for row_id, suggestion in zip(
        picked, trained_model.suggest_many(samples.loc[picked, "text"].tolist()), strict=True
    ):
        assert [label for label in LABELS if suggestions.at[row_id, label]] == suggestion.labels
        assert suggestions.at[row_id, "outcome"] == suggestion.outcome


def test_suggest_frame_takes_a_series_and_keeps_its_index(trained_model: TriageModel) -> None:
    texts = pd.Series(["Bitte 2FA für das Admin-Portal", ""], index=["a", "b"])
    frame = an.suggest_frame(trained_model, texts)
    assert frame.index.tolist() == ["a", "b"]
    assert "empty_text" in frame.at["b", "flags"]


def test_evaluate_agrees_with_the_training_metrics(
    trained_model: TriageModel, samples: pd.DataFrame, suggestions: pd.DataFrame
) -> None:
    raw = load_samples(EVAL_PATH).samples
    probabilities = trained_model.score_matrix([s.text for s in raw])
    expected = metrics_from(
        label_matrix(raw), decisions(probabilities, trained_model.thresholds), [s.lang for s in raw]
    )
    table = an.evaluate(samples, suggestions)
    for label in LABELS:
        for metric in ("precision", "recall", "f1", "support"):
            assert table.at[label, metric] == pytest.approx(
                expected["per_label"][label][metric], abs=1e-4
            )
    assert table.at["macro", "f1"] == pytest.approx(expected["macro_f1"], abs=1e-4)
    by_lang = an.evaluate(samples, suggestions, by="lang")
    for lang, values in expected["per_language"].items():
        assert by_lang.at[(lang, "macro"), "f1"] == pytest.approx(values["macro_f1"], abs=1e-4)
        assert by_lang.at[(lang, "macro"), "n"] == values["n"]


def test_evaluate_needs_a_suggestion_for_every_labeled_row(
    samples: pd.DataFrame, suggestions: pd.DataFrame
) -> None:
    with pytest.raises(KeyError, match="no suggestion"):
        an.evaluate(samples, suggestions.iloc[1:])
    part = an.evaluate(samples.iloc[:10], suggestions)  # more suggestions than labels is fine
    assert part.at["macro", "n"] == 10


def test_confusion_sweep_and_mistakes_are_consistent(
    trained_model: TriageModel, samples: pd.DataFrame, suggestions: pd.DataFrame
) -> None:
    table = an.evaluate(samples, suggestions)
    for label in LABELS:
        matrix = an.confusion(samples, suggestions, label)
        assert matrix.at["yes", "yes"] == table.at[label, "tp"]
        assert matrix.at["no", "yes"] == table.at[label, "fp"]
        assert matrix.to_numpy().sum() == len(samples)
        at_threshold = an.threshold_sweep(
            samples, suggestions, thresholds=[trained_model.thresholds[label]]
        )
        row = at_threshold[at_threshold["label"] == label].iloc[0]
        assert row["recall"] == pytest.approx(table.at[label, "recall"])
        assert row["current"] == trained_model.thresholds[label]
    curves = an.pr_curves(samples, suggestions)
    assert set(curves["label"]) == set(LABELS)
    assert curves["precision"].between(0, 1).all()
    wrong = an.mistakes(samples, suggestions, n=None)
    assert len(wrong) == int(table.loc[list(LABELS), ["fp", "fn"]].to_numpy().sum())
    assert wrong["distance"].is_monotonic_decreasing
    for mistake in wrong.head(5).itertuples():
        assert samples.at[mistake.id, mistake.label] != suggestions.at[mistake.id, mistake.label]
        assert (mistake.kind == "false_negative") == samples.at[mistake.id, mistake.label]


def test_explanations_are_a_long_frame_of_spans(
    trained_model: TriageModel, samples: pd.DataFrame
) -> None:
    picked = samples.iloc[:6]
    frame = an.explanations(trained_model, picked)
    assert frame.columns.tolist() == ["id", "label", "term", "weight", "start", "end"]
    assert set(frame["id"]) <= set(picked.index) and set(frame["label"]) <= set(LABELS)
    for row in frame.itertuples():
        assert picked.at[row.id, "text"][row.start : row.end] == row.term
    for _, group in frame.groupby(["id", "label"]):
        assert group["weight"].abs().is_monotonic_decreasing
    only = an.explanations(trained_model, picked["text"], labels=["security"])
    assert set(only["label"]) == {"security"}
    with pytest.raises(KeyError, match="unknown label"):
        an.explanations(trained_model, picked, labels=["urgent"])
    assert an.explanations(trained_model, picked.iloc[:0]).empty
    # One label given as a string is that label, not its letters.
    assert set(an.explanations(trained_model, picked, labels="security")["label"]) == {"security"}


def test_edge_cases_fail_clearly_or_answer_sensibly(
    samples: pd.DataFrame, suggestions: pd.DataFrame
) -> None:
    assert an.pr_curves(samples.iloc[:0], suggestions.iloc[:0]).empty
    with pytest.raises(ValueError, match="n=-1"):
        an.mistakes(samples, suggestions, n=-1)
    with pytest.raises(ValueError, match="n=-1"):
        an.telling_terms(samples, "security", n=-1)
    with pytest.raises(ValueError, match="no files given"):
        an.load_samples([])
    with pytest.raises(an.ReviewStoreError, match="not a database URL"):
        an.load_reviews("foo://x")


def _types(frame: pd.DataFrame, columns: list[str] | None = None) -> dict[str, object]:
    return {c: frame[c].dtype for c in (frame.columns if columns is None else columns)}


def test_empty_input_gives_empty_frames_of_the_usual_types(
    trained_model: TriageModel, samples: pd.DataFrame, suggestions: pd.DataFrame
) -> None:
    empty = samples.iloc[:0]
    none = an.suggest_frame(trained_model, empty)
    assert none.empty and _types(none) == _types(suggestions)
    for by, by_all in (("lang", "lang"), (an.length_bucket(empty), an.length_bucket(samples))):
        table = an.evaluate(empty, none, by=by)
        usual = an.evaluate(samples, suggestions, by=by_all)
        assert table.empty and table.index.names == usual.index.names
        assert _types(table) == _types(usual)
    assert an.evaluate(empty, none)["n"].eq(0).all()  # per label, without groups: all zero
    assert an.label_sets(empty).dtype == an.label_sets(samples).dtype
    kept = ["label", "kind", "score", "threshold", "distance"]
    assert _types(an.mistakes(empty, none), kept) == _types(an.mistakes(samples, suggestions), kept)
    kept = ["label", "term", "weight", "start", "end"]
    assert _types(an.explanations(trained_model, empty), kept) == (
        _types(an.explanations(trained_model, samples.iloc[:3]), kept)
    )


# --- reviews ---------------------------------------------------------------------------------


def test_reviews_frame(reviews: pd.DataFrame) -> None:
    assert len(reviews) == 39  # the pending request is left out
    assert reviews.index.name == "id" and reviews.index.is_unique
    assert all(reviews[c].dtype == bool for c in (*LABELS, "blind", "labels_agreed"))
    assert str(reviews["received_at"].dt.tz) == "UTC"
    assert reviews["received_at"].is_monotonic_increasing
    assert int(reviews["blind"].sum()) == 13
    reviewed = reviews[list(LABELS)].to_numpy()
    suggested = an.label_columns(reviews, "suggested_").to_numpy()
    assert (reviews["labels_agreed"] == (reviewed == suggested).all(axis=1)).all()
    assert not reviews["labels_agreed"].all() and reviews["labels_agreed"].any()
    second = reviews.loc[2]  # reviewed twice: the later review counts
    assert second["reviewer"] == "lead" and not second[list(LABELS)].any()
    # A reviewer's own outcome call is kept as made: a decline of a labelled request.
    overridden = (reviews["outcome"] == "decline_limited_use") & reviews[list(LABELS)].any(axis=1)
    assert overridden.any()


def test_reviews_over_time(reviews: pd.DataFrame) -> None:
    agreement = an.agreement_over_time(reviews)
    assert agreement["reviews"].sum() == len(reviews)
    periods = agreement.index.get_level_values("period").unique()
    assert len(periods) == 5 and all(p.day_of_week == 0 for p in periods)  # weeks start Monday
    assert agreement["agreed"].between(0, 1).all()
    langs = an.mix_over_time(reviews, "lang")
    assert langs.to_numpy().sum() == len(reviews) and list(langs.index) == list(periods)
    shares = an.label_share_over_time(reviews, freq="M")
    assert len(shares) == 2  # January and February 2025
    monthly = an.agreement_over_time(reviews, freq="M")
    assert monthly["reviews"].sum() == len(reviews)


def test_corrections_count_directions(reviews: pd.DataFrame) -> None:
    table = an.corrections(reviews)
    assert set(table.index) == set(LABELS)
    for label in LABELS:
        row = table.loc[label]
        assert row["kept"] + row["removed"] == reviews[f"suggested_{label}"].sum()
        assert row["kept"] + row["added"] == reviews[label].sum()
    assert table.at["broad_value", "added"] + table.at["broad_value", "removed"] >= 8
    assert table["corrected"].is_monotonic_decreasing


def test_reviews_refuse_a_missing_or_foreign_database(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite3"
    with pytest.raises(an.ReviewStoreError, match="no SQLite review store"):
        an.load_reviews(f"sqlite:///{missing}")
    assert not missing.exists()  # reading never creates a database
    foreign = tmp_path / "other.sqlite3"
    foreign.write_bytes(b"")
    with pytest.raises(an.ReviewStoreError, match="cannot read reviews"):
        an.load_reviews(f"sqlite:///{foreign}")


def test_empty_review_store_gives_an_empty_frame(tmp_path: Path) -> None:
    from service.store import Store

    store = Store(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    store.migrate()
    store.close()
    frame = an.load_reviews(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert frame.empty and set(LABELS) <= set(frame.columns)


def test_no_review_rows_give_the_columns_of_reviews(reviews: pd.DataFrame) -> None:
    empty = an.reviews_frame([])
    assert empty.empty and empty.columns.tolist() == reviews.columns.tolist()
    times = ["received_at", "reviewed_at"]  # UTC; the unit (s, us) follows the values
    assert all(str(empty[c].dt.tz) == "UTC" for c in times)
    filled = [c for c in reviews.columns if c not in times and reviews[c].notna().all()]
    assert "text" in filled and "customer" not in filled  # no request here names a customer
    assert _types(empty, filled) == _types(reviews, filled)


# --- boundaries ------------------------------------------------------------------------------


@pytest.mark.parametrize("package", ["model", "training", "service"])
def test_core_packages_never_import_analysis(package: str) -> None:
    pattern = re.compile(r"^\s*(from|import)\s+analysis\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in (REPO_ROOT / package).rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "module", ["analysis.frames", "analysis.data", "analysis.quality", "analysis.overview"]
)
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    failed, _ = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert failed == 0
