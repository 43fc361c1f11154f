from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("clip/", include("clipcheck.api.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "clipcheck.api.exceptions.json_bad_request"
handler403 = "clipcheck.api.exceptions.json_permission_denied"
handler404 = "clipcheck.api.exceptions.json_not_found"
handler500 = "clipcheck.api.exceptions.json_server_error"
