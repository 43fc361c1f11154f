from django.urls import path

from listings.api import views

app_name = "listings"

urlpatterns = [
    path("upload", views.UploadView.as_view(), name="upload"),
]
