from django.urls import path

from listings.api import views

app_name = "listings"

urlpatterns = [
    path("upload", views.UploadView.as_view(), name="upload"),
    path("listings/<int:listing_id>/statements", views.ListingStatementsView.as_view(), name="listing-statements"),
    path("listings/<int:listing_id>/appeal", views.ListingAppealView.as_view(), name="listing-appeal"),
]
