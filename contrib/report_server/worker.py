"""For the ``dramatiq`` command: ``dramatiq hybiscus_webhooks_contrib.report_server.worker``.

Importing it builds the broker from REPORT_SERVER_BROKER_URL, mounts ``render_report`` and the
webhook delivery actor on it and sets it as Dramatiq's broker, where the command looks for it.
"""

import dramatiq

from .config import ServerConfig
from .pipeline import pipeline_from_config

pipeline = pipeline_from_config(ServerConfig.from_environment())
dramatiq.set_broker(pipeline.broker)
