"""Benchmarks of hybiscus_webhooks against baselines, run side by side: ``python -m bench [NAME ...]``.

See bench/README.md. Nothing here is imported by the library or its tests, except the smoke test.
"""
