"""Routes of the job API; include under "api/"."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from .api_errors import not_found_view
from .events import job_events
from .options import JOB_ID_CHARS
from .views import JobViewSet

router = SimpleRouter()
# The slash is optional: /api/job and /api/job/ both work (SimpleRouter only takes a bool).
router.trailing_slash = "/?"
router.register("job", JobViewSet, basename="job")

urlpatterns = [
    *router.urls,
    # Live events: an async view (gravity.asgi routes it to Django's ASGI handler).
    re_path(rf"^job/(?P<job_id>{JOB_ID_CHARS})/events/?$", job_events, name="job-events"),
    # Anything else under the API prefix is a JSON 404, even with DEBUG on.
    # [\s\S], not ".": a path may hold a newline (%0A), and it is still an API path.
    re_path(r"^[\s\S]*$", not_found_view),
]
