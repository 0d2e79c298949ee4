"""URL configuration: the admin and the API."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("jobs.urls")),
]

handler404 = "jobs.api_errors.not_found_view"
handler500 = "jobs.api_errors.server_error_view"
