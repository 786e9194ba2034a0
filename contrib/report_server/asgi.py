"""App factories for uvicorn, configured from the environment when called::

    uvicorn --factory hybiscus_webhooks_contrib.report_server.asgi:starlette_app
    uvicorn --factory hybiscus_webhooks_contrib.report_server.asgi:fastapi_app

See config.ServerConfig for the REPORT_SERVER_* variables; HYBISCUS_WEBHOOKS_SETTINGS names the
settings of hybiscus_webhooks, usually hybiscus_webhooks_contrib.report_server.webhook_settings.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from hybiscus_webhooks import ImproperlyConfigured

from .app import create_app
from .config import ServerConfig
from .pipeline import pipeline_from_config


def _config() -> ServerConfig:
    config = ServerConfig.from_environment()
    if not config.api_keys:
        raise ImproperlyConfigured("REPORT_SERVER_API_KEYS is not set: give one or more keys, comma-separated.")
    return config


def starlette_app() -> Starlette:
    config = _config()
    pipeline = pipeline_from_config(config)
    return create_app(pipeline, api_keys=config.api_keys, on_shutdown=pipeline.close)


def fastapi_app() -> Any:
    from .fastapi_app import create_fastapi_app  # FastAPI is an extra: imported only when asked for.

    config = _config()
    pipeline = pipeline_from_config(config)
    return create_fastapi_app(pipeline, api_keys=config.api_keys, on_shutdown=pipeline.close)
