"""Celery tasks of the gateway: draining usage, storing interrupted requests, keeping raw usage
to its retention."""

from __future__ import annotations

from gateway.usage.drain import drain_usage_stream
from gateway.usage.services import usage_delete_old_events, usage_store_interrupted
from llmapi.celery import app


@app.task(ignore_result=True)
def drain_usage() -> int:
    return drain_usage_stream()


@app.task(ignore_result=True)
def store_interrupted_usage() -> int:
    return usage_store_interrupted()


@app.task(ignore_result=True)
def delete_old_usage_events() -> int:
    return usage_delete_old_events()
