"""Builds ``model/resources/lang_profiles.json``: character trigram profiles of German and
English, used by language detection for texts too short to carry stop words.

Run ``python -m training.lang_profiles`` after the training data changes much; the profile is
committed so that detection needs no data and no network at run time.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from model.text import LANG_PROFILE_PATH, profile_trigrams
from training.data import load_samples
from training.train import DEFAULT_TRAIN

TOP = 3000


def build_profiles(train_path: Path = DEFAULT_TRAIN) -> dict[str, dict[str, float]]:
    counts: dict[str, Counter[str]] = {"de": Counter(), "en": Counter()}
    for sample in load_samples(train_path).samples:
        counts[sample.lang].update(profile_trigrams(sample.text))
    profiles = {}
    for lang, counter in counts.items():
        total = sum(counter.values())
        profiles[lang] = {
            gram: round(math.log(n / total), 4) for gram, n in counter.most_common(TOP)
        }
    return profiles


def main() -> None:
    profiles = build_profiles()
    LANG_PROFILE_PATH.write_text(json.dumps(profiles, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {LANG_PROFILE_PATH} ({', '.join(f'{k}: {len(v)}' for k, v in profiles.items())})")


if __name__ == "__main__":
    main()
