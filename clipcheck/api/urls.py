from django.urls import path

from clipcheck.api import views

app_name = "clipcheck"

urlpatterns = [
    path("analyze", views.AnalyzeView.as_view(), name="analyze"),
    path("classify", views.ClassifyView.as_view(), name="classify"),
    path("embed", views.EmbedView.as_view(), name="embed"),
    path("categories", views.CategoriesView.as_view(), name="categories"),
    path("analyze-batch", views.AnalyzeBatchView.as_view(), name="analyze-batch"),
    path("health", views.HealthView.as_view(), name="health"),
]
