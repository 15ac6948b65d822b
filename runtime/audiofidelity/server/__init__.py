"""The evaluation service (``audiofidelity serve``): audioldm_eval's HTTP API over a persistent job store.

Needs the ``server`` extra (FastAPI, uvicorn, python-multipart); nothing else in the package imports
this subpackage. ``jobstore`` (SQLite), ``uploads`` (checking and storing uploaded audio), ``worker``
(the background thread that runs jobs with models loaded once), ``limits`` (body size and timeouts),
``config`` (``ServerConfig``), ``routes`` (the endpoints, given the store, worker, configuration and limits
through ``Depends``), ``app`` (``create_app``: state, middleware, error bodies, the token; ``serve``).
"""
