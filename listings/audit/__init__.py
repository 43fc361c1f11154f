"""The catalogue audit: every listing's title and description checked against its image.

- ``records``: what both modes share: the run's options, the report rows and
  the summary counts (with their task-message forms);
- ``local``: the selection of listings and the pipeline that checks them on
  this machine (``manage.py clip_audit``), and ``audit_chunk``, the same
  pipeline for one chunk (what a Celery worker runs);
- ``distributed``: sending chunks to Celery workers on the ``clip`` queue and
  collecting their results (``clip_audit --distributed``).
"""
