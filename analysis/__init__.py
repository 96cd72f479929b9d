"""The analysts' API: feature requests, reviews, models and their quality as pandas frames.

Every frame of feature requests is indexed by its ``id`` and holds one boolean column per
label (``msp_configurable``, ``security``, ``broad_value``), so frames from different sources
line up by index and compare column by column.

>>> from analysis import evaluate, load_samples, load_version, suggest_frame
>>> samples = load_samples("data/samples/eval.jsonl")    # doctest: +SKIP
>>> model = load_version("var/models")                   # doctest: +SKIP
>>> suggestions = suggest_frame(model, samples)          # doctest: +SKIP
>>> evaluate(samples, suggestions, by="lang")            # doctest: +SKIP

``model``, ``training`` and ``service`` never import this package; it only reads from them.
"""

from analysis.data import SAMPLE_PATHS, add_text_stats, load_samples
from analysis.duplicates import near_duplicates, wish_groups
from analysis.feedback import (
    agreement_over_time,
    corrections,
    label_share_over_time,
    mix_over_time,
    period,
)
from analysis.frames import NO_LABEL, columns_from_lists, label_columns, label_sets
from analysis.models import list_versions, load_version, report_pictures
from analysis.overview import cooccurrence, telling_terms
from analysis.quality import (
    MACRO,
    confusion,
    evaluate,
    length_bucket,
    mistakes,
    pr_curves,
    threshold_sweep,
)
from analysis.reviews import ReviewStoreError, load_reviews, reviews_frame
from analysis.suggest import explanations, suggest_frame
from model.estimator import LABELS

__all__ = [
    "LABELS",
    "MACRO",
    "NO_LABEL",
    "SAMPLE_PATHS",
    "ReviewStoreError",
    "add_text_stats",
    "agreement_over_time",
    "columns_from_lists",
    "confusion",
    "cooccurrence",
    "corrections",
    "evaluate",
    "explanations",
    "label_columns",
    "label_sets",
    "label_share_over_time",
    "length_bucket",
    "list_versions",
    "load_reviews",
    "load_samples",
    "load_version",
    "mistakes",
    "mix_over_time",
    "near_duplicates",
    "period",
    "pr_curves",
    "report_pictures",
    "reviews_frame",
    "suggest_frame",
    "telling_terms",
    "threshold_sweep",
    "wish_groups",
]
