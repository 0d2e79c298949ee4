"""This project's changes to the admin site: the job dashboard linked from its index."""

from django.contrib import admin

# The index links the job dashboard (the template adds a box above the apps).
admin.site.index_template = "jobs/admin/index.html"
