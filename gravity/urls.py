"""URL configuration: the admin, the API and its OpenAPI schema, /metrics, the account pages."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from jobs.metrics import metrics_view

from . import admin_site  # noqa: F401  (adjusts admin.site before its URLs are used)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("accounts.urls")),
    path("api/", include("jobs.urls")),
    # Prometheus: JOBS["METRICS_TOKEN"] / ["METRICS_ALLOWED_IPS"] say who may scrape it.
    path("metrics", metrics_view, name="metrics"),
    # The pages links in emails open (stand-ins for a client app).
    path("", include("accounts.pages")),
]

handler404 = "jobs.api_errors.not_found_view"
handler500 = "jobs.api_errors.server_error_view"
