"""ASGI entry point: live job events are served asynchronously; every other request by the WSGI app, in a thread pool.

Django runs sync views under ASGI in one thread per process; the API is sync (DRF), so it keeps
the WSGI app's thread pool (a2wsgi), and only the long-lived event streams are async, so that a
client watching a job ties up no thread.
"""

import os
import re

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gravity.settings")

from a2wsgi import WSGIMiddleware  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

django_asgi = get_asgi_application()
django_wsgi = WSGIMiddleware(get_wsgi_application(), workers=int(os.environ.get("WEB_THREADS", "4")))
STREAMS = re.compile(r"^/api/job/[^/]+/events/?$")


async def application(scope, receive, send):
    if scope["type"] == "http" and STREAMS.match(scope["path"]):
        await django_asgi(scope, receive, send)
    else:
        # HTTP requests, and the server's lifespan messages (a2wsgi answers them).
        await django_wsgi(scope, receive, send)
