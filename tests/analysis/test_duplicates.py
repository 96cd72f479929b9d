"""Near-duplicates within a frame: the demand signal's rule, for analysts."""

from __future__ import annotations

import pandas as pd
import pytest

import analysis.duplicates
from analysis import near_duplicates, wish_groups
from model import TriageModel
from tests.conftest import CROSS_LANGUAGE_PAIR

TEXTS = pd.Series(
    {
        "de": CROSS_LANGUAGE_PAIR[0],  # with "en": linked by the concept space only
        "tetris": "Ein Tetris-Spiel auf dem Telefon für den Chef, Spaß muss sein",
        "en": CROSS_LANGUAGE_PAIR[1],
        "de-again": "Zwei-Faktor-Authentifizierung für das Admin-Portal, Passwörter reichen nicht",
        "empty": "",
    }
)


def test_pairs_within_and_across_languages(trained_model: TriageModel) -> None:
    pairs = near_duplicates(trained_model, TEXTS)
    found = {(row.first, row.second): row.cross_language for row in pairs.itertuples()}
    assert not found[("de", "de-again")]  # the same language: linked by words
    assert found[("de", "en")]
    assert not any("tetris" in pair or "empty" in pair for pair in found)
    assert list(pairs.similarity) == sorted(pairs.similarity, reverse=True)
    cross = pairs[pairs.cross_language]
    assert (cross.similarity >= trained_model.concept_link_similarity).all()
    assert set(cross.first_lang) | set(cross.second_lang) == {"de", "en"}


def test_blocks_do_not_change_the_pairs(
    trained_model: TriageModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = near_duplicates(trained_model, TEXTS.to_frame("text"))
    monkeypatch.setattr(analysis.duplicates, "_BLOCK", 2)
    pd.testing.assert_frame_equal(near_duplicates(trained_model, TEXTS), whole)


def test_no_pairs_is_an_empty_frame_with_the_columns(trained_model: TriageModel) -> None:
    pairs = near_duplicates(trained_model, TEXTS[["tetris", "empty"]])
    assert pairs.empty and list(pairs.columns) == list(analysis.duplicates.DUPLICATE_COLUMNS)


def test_wish_groups_join_pairs_and_count_partners(trained_model: TriageModel) -> None:
    frame = TEXTS.to_frame("text").assign(
        partner=["Muster IT", "Acme", "Acme UK", " muster it ", None],
        lang=["de", "de", "en", "de", "de"],
    )
    pairs = near_duplicates(trained_model, frame)
    groups = wish_groups(pairs, frame)
    assert len(groups) == 1  # de, en and de-again are one wish; tetris and empty none
    (group,) = groups.itertuples()
    assert sorted(group.requests) == ["de", "de-again", "en"]
    assert group.n_requests == 3 and group.partners == 2  # "Muster IT" twice, written apart
    assert group.langs == "de, en"


def test_wish_groups_of_no_pairs_is_empty(trained_model: TriageModel) -> None:
    frame = TEXTS.to_frame("text")
    assert wish_groups(near_duplicates(trained_model, frame.iloc[[1, 4]]), frame).empty


def test_wish_groups_refuse_pairs_of_another_frame(trained_model: TriageModel) -> None:
    pairs = near_duplicates(trained_model, TEXTS)
    with pytest.raises(ValueError, match="not in the frame's index: \\['de'"):
        wish_groups(pairs, TEXTS.to_frame("text").drop(index="de"))


def test_wish_groups_have_the_same_columns_with_or_without_groups() -> None:
    """A store where no wish repeats yet: the columns a notebook reads are there all the same."""
    frame = pd.DataFrame(
        {
            "text": ["Wartemusik pro Queue", "Hold music per queue", "Tetris"],
            "lang": ["de", "en", "en"],
            "partner": ["Acme", "Muster IT", None],
            "customer": ["A", "B", "C"],
        },
        index=pd.Index([1, 2, 3], name="id"),
    )
    linked = pd.DataFrame(
        {
            "first": [1],
            "second": [2],
            "similarity": [0.8],
            "cross_language": [True],
            "first_lang": ["de"],
            "second_lang": ["en"],
        }
    )
    expected = ["requests", "n_requests", "partners", "customers", "langs", "text"]
    assert list(wish_groups(linked, frame).columns) == expected
    none = wish_groups(linked.iloc[:0], frame)
    assert none.empty and list(none.columns) == expected
    none[["requests", "partners", "langs"]]  # what a notebook reads: no KeyError
    # Columns the frame lacks are left out alike, groups or none.
    bare = frame[["text"]]
    assert list(wish_groups(linked, bare).columns) == ["requests", "n_requests", "text"]
    assert list(wish_groups(linked.iloc[:0], bare).columns) == ["requests", "n_requests", "text"]
