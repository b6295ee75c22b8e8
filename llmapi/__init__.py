"""The LLM API project package."""

from llmapi.celery import app as celery_app

__all__ = ["celery_app"]
