"""Everything needed at inference time: text analysis, the estimator, suggestions, registry."""

from model.predictor import TriageModel
from model.registry import ArtifactError, Registry, load_model
from model.suggestion import (
    OUTCOMES,
    Evidence,
    Ignored,
    LabelScore,
    SimilarRequest,
    Suggestion,
    reviewed_request_id,
    reviewed_sample_id,
)

__all__ = [
    "OUTCOMES",
    "ArtifactError",
    "Evidence",
    "Ignored",
    "LabelScore",
    "Registry",
    "SimilarRequest",
    "Suggestion",
    "TriageModel",
    "load_model",
    "reviewed_request_id",
    "reviewed_sample_id",
]
