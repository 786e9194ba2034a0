REPORT_URL = "https://api.example.com/api/v1/get-report?task_id={task_id}"
MAX_WEBHOK = 2
