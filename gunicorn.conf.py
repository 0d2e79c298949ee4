"""gunicorn's settings for every way the web process runs (Procfile, tests, benchmark): read from the working directory."""

# The longest request line HTTP servers commonly take (gunicorn's own maximum); a longer one is
# answered 414 by gunicorn itself, before the app. The API's query parameters fit well within it.
limit_request_line = 8190
