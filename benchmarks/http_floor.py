"""The HTTP stack's own cost: an app that answers every call with a canned suggestion.

    uvicorn benchmarks.http_floor:app --port 8012 --workers 2 --http httptools \\
        --loop uvloop --no-access-log --log-level warning
    python benchmarks/load.py --url http://127.0.0.1:8012

Same server (uvicorn with httptools and uvloop, two workers), same load client, same body
parsing (``json.loads``) as the service; the answer is a fixed ``/v1/suggest`` answer of the
usual size (2.6 KB) instead of the model's. What ``load.py`` prints against it is the
floor under the service's figures on this machine: whatever the service costs above it is the
model's work and the service's own bookkeeping (access log, metrics, request ids).
"""

from __future__ import annotations

import json
from typing import Any

_EVIDENCE = [
    {"field": "text", "text": word, "start": start, "end": start + len(word), "weight": weight}
    for word, start, weight in (("Hotline-Queue", 44, 3.21), ("Wartemusik", 25, 1.53))
]
_SIMILAR = [
    {
        "id": f"tr{1000 + i}",
        "text": "Kunde möchte eine andere Wartemusik für die Vertriebs-Queue als für den "
        "Support, geht das über das Portal oder müsst ihr das einstellen?",
        "labels": ["msp_configurable"],
        "lang": "de",
        "similarity": round(0.7 - 0.1 * i, 4),
        "cross_language": False,
    }
    for i in range(5)
]
ANSWER: dict[str, Any] = {
    "model_version": "canned",
    "language": "de",
    "labels": ["msp_configurable"],
    "scores": {"msp_configurable": 0.98, "security": 0.0002, "broad_value": 0.0005},
    "per_label": [
        {
            "label": label,
            "score": score,
            "threshold": threshold,
            "decision": score >= threshold,
            "uncertain": False,
            "evidence": _EVIDENCE,
        }
        for label, score, threshold in (
            ("msp_configurable", 0.98, 0.5),
            ("security", 0.0002, 0.15),
            ("broad_value", 0.0005, 0.5),
        )
    ],
    "outcome": "partner_configure",
    "rationale": "A partner can configure this today (msp_configurable 0.98).",
    "uncertain_labels": [],
    "flags": [],
    "similar": _SIMILAR,
    "max_similarity": 0.7,
    "thresholds": {"msp_configurable": 0.5, "security": 0.15, "broad_value": 0.5},
    "uncertainty_band": 0.1,
    "ignored": [],
    "demand": None,
}
BODY = json.dumps(ANSWER, ensure_ascii=False).encode()
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read and parse the body as the service does; answer the canned suggestion."""
    if scope["type"] != "http":
        return
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    if body:  # load.py's readiness check is a GET without one
        json.loads(body)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": BODY})
