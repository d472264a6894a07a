"""JSON Schemas of process-control, shipped as package data (``run_job.schemas``)."""
