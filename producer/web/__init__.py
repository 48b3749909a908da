"""`producer serve`: the HTTP API and the pages (FastAPI + Jinja2), over the same code
paths as the CLI."""
