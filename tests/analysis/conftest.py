"""A small review store, filled through the service's own API, for the analysis tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
EVAL_PATH = REPO_ROOT / "data" / "samples" / "eval.jsonl"
API_KEY = "analysis-test-key"
AUTH = {"X-API-Key": API_KEY}
WEEKS = 5
PER_WEEK = 8
START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)  # a Monday


@pytest.fixture(scope="session")
def review_store(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> str:
    """URL of a SQLite inbox with 40 requests over five weeks, 39 of them reviewed.

    Reviewers give the eval file's labels (so real disagreements appear), every third review
    is blind, every fifth flips the suggested ``broad_value`` instead (a sure correction), one
    request is reviewed twice (the second counts) and the last one stays pending.
    """
    folder = tmp_path_factory.mktemp("reviews")
    url = f"sqlite:///{folder / 'triage.sqlite3'}"
    settings = Settings(
        model_dir=trained_model_dir,
        database_url=url,
        api_keys=(API_KEY,),
        api_key_file=folder / "api-key",
        reload_interval=0,
        log_level="WARNING",
        blind_review_share=0.0,  # the reviews below say themselves which are blind
    )
    records = [json.loads(line) for line in EVAL_PATH.read_text(encoding="utf-8").splitlines()[:40]]
    with TestClient(create_app(settings)) as client:
        for i, record in enumerate(records):
            received = START + timedelta(days=7 * (i // PER_WEEK), hours=5 * (i % PER_WEEK))
            created = client.post(
                "/v1/requests",
                json={
                    "text": record["text"],
                    "source": "form" if i % 2 else "mail",
                    "partner": f"partner-{i % 4}",
                    "received_at": received.isoformat(),
                },
                headers=AUTH,
            )
            assert created.status_code == 201, created.text
            if i == len(records) - 1:
                continue  # stays pending
            suggested = set(created.json()["suggestion"]["labels"])
            labels = suggested ^ {"broad_value"} if i % 5 == 0 else set(record["labels"])
            review = {
                "labels": sorted(labels),
                "reviewer": ["jd", "ak", "mb"][i % 3],
                "blind": i % 3 == 0,
                # Now and then the reviewer's own outcome call, where the security rule lets one.
                "outcome": "decline_limited_use"
                if i % 7 == 0 and "security" not in labels
                else None,
            }
            path = f"/v1/requests/{created.json()['id']}/review"
            answer = client.post(path, json=review, headers=AUTH)
            assert answer.status_code == 201, answer.text
            if i == 1:  # a second opinion replaces the first
                again = client.post(
                    path, json={"labels": [], "reviewer": "lead", "blind": False}, headers=AUTH
                )
                assert again.status_code == 201, again.text
    return url
