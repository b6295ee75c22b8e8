"""Usage: one record per /v1/messages request, from the gateway to the dashboard.

Writing goes in at one place, `gateway.usage.writer.emit` (a gateway process hands a finished
request's record over); everything else on the way down (the stream drain, the writer's
database fallback) ends in `gateway.usage.services.usage_ingest`. Reading goes out at one place,
`gateway.usage.selectors` (pages, the REST API and the admin). See docs/usage.md.

    record.py     UsageRecord: what a request leaves behind
    writer.py     the gateway process's buffer and writer task (Redis stream, or the database)
    drain.py      the Celery side: consumer group on the stream -> usage_ingest
    services.py   usage_ingest (events, rollups, last use) and retention
    rollups.py    sums per hour and day, added in one statement per batch
    models.py     UsageEvent, UsageRollup (registered with the gateway app by gateway/models.py)
    selectors.py  reads for pages: totals, series, breakdowns, CSV rows, the dashboard's periods
    admin.py      the admin's usage pages
"""
