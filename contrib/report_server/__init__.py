"""A small, real Hybiscus-compatible report server: the integration of hybiscus_webhooks to copy.

Needs the ``demo`` extra (fpdf2 renders the PDFs); the FastAPI variant also the ``fastapi`` extra.
"""

from .app import create_app
from .config import ServerConfig
from .pipeline import RENDER_ACTOR, Pipeline, broker_from_url, build_pipeline, store_for
from .render import UnrenderableReport, render_pdf
from .store import MemoryTaskStore, RedisTaskStore, Task, TaskStore

__all__ = [
    "RENDER_ACTOR",
    "MemoryTaskStore",
    "Pipeline",
    "RedisTaskStore",
    "ServerConfig",
    "Task",
    "TaskStore",
    "UnrenderableReport",
    "broker_from_url",
    "build_pipeline",
    "create_app",
    "render_pdf",
    "store_for",
]
