"""Routes of the core API (the change feed), included under ``/api/v1/``."""

from django.urls import path

from .views import ChangeFeedView

urlpatterns = [path("feed/", ChangeFeedView.as_view(), name="change-feed")]
