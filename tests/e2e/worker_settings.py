"""Settings of the tests' `dramatiq` worker processes: HYBISCUS_WEBHOOKS_SETTINGS=tests.e2e.worker_settings."""

import os

REPORT_URL = "https://reports.example.com/api/v1/get-report?task_id={task_id}"
QUEUE_NAME = os.environ["HW_E2E_QUEUE"]  # Unique to each test.
ALLOW_PRIVATE_DESTINATIONS = True  # The receiver is on loopback.
