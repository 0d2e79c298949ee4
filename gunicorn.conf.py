"""gunicorn's settings for every way the web process runs (Procfile, tests, benchmark): read from the working directory."""

# uvicorn workers run the ASGI app (gravity.asgi): live job events are async; the API's sync views
# run in a thread pool of WEB_THREADS per process.
worker_class = "uvicorn_worker.UvicornWorker"

# The longest request line HTTP servers commonly take (gunicorn's own maximum); a longer one is
# answered 414 by gunicorn itself, before the app. The API's query parameters fit well within it.
limit_request_line = 8190
