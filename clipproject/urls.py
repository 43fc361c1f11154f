from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from clipcheck.api.docs import SchemaView, SwaggerUIView
from clipcheck.login_throttle import ThrottledAdminLoginForm
from clipcheck.metrics import metrics_view
from clipproject.views import HomeView, sample_picture
from listings.api.views import SearchView

# Wrong passwords are counted per username and per address (CLIPCHECK FAILED_LOGIN_RATE_*).
admin.site.login_form = ThrottledAdminLoginForm

urlpatterns = [
    path("", HomeView.as_view(), name="home"),
    # The known-answer model's sample pictures for the page at / (clipproject.views).
    path("samples/<slug:name>.png", sample_picture, name="home-sample"),
    # The catalogue search lives with the catalogue (listings), under /clip/ with the other similarity endpoints.
    path("clip/search", SearchView.as_view(), name="search"),
    path("clip/", include("clipcheck.api.urls")),
    path("", include("listings.api.urls")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SwaggerUIView.as_view(url_name="schema"), name="swagger-ui"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # Local media under DEBUG only; the admin shows listing images through
    # its own view, which works for any storage.
    *static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT),
]

handler400 = "clipcheck.api.exceptions.json_bad_request"
handler403 = "clipcheck.api.exceptions.json_permission_denied"
handler404 = "clipcheck.api.exceptions.json_not_found"
handler500 = "clipcheck.api.exceptions.json_server_error"
