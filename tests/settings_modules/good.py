REPORT_URL = "https://api.example.com/api/v1/get-report?task_id={task_id}"
MAX_WEBHOOKS = 2
QUEUE_NAME = "webhooks_from_module"
lowercase_names_are_ignored = True
