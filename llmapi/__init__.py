"""The LLM API project package.

Its Celery application is llmapi.celery.app (`celery -A llmapi` finds it there), imported only by
the processes that use Celery: a web process sends no tasks, and Celery's modules would cost each
of its workers some 6 MB.
"""
