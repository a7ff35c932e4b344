"""Dagster definitions by concern: ingest/, dbt/, ml/, publish/; merged in `pipelines/definitions.py`."""
