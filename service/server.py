"""Run the service with uvicorn: the function ``triage serve`` calls."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from service.logs import configure_logging, uvicorn_log_config
from service.security import resolve_api_keys
from service.settings import VAR_DIR, Settings

logger = logging.getLogger(__name__)


def serve(host: str, port: int, workers: int, model_dir: Path | None) -> None:
    """Start uvicorn with ``service.app:create_app`` as factory; returns when it stops.

    Settings come from ``TRIAGE_*`` variables; ``model_dir`` (if given) overrides
    ``TRIAGE_MODEL_DIR``. The API key file is created here, before the workers start, so that
    its path is logged once. With several workers, Prometheus metrics are collected across
    processes in ``PROMETHEUS_MULTIPROC_DIR`` (default ``var/prometheus``, emptied at start).
    """
    import uvicorn

    if model_dir is not None:
        os.environ["TRIAGE_MODEL_DIR"] = str(model_dir)
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    resolve_api_keys(settings)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = VAR_DIR / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    logger.info(
        "starting the triage service on http://%s:%d with %d worker(s); model dir %s",
        host,
        port,
        workers,
        settings.model_dir,
    )
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=uvicorn_log_config(settings.log_level),
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
