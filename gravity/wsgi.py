"""WSGI entry point (gunicorn gravity.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gravity.settings")
application = get_wsgi_application()
