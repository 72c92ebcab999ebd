from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import EventIngestView, MessageEventViewSet

router = SimpleRouter()
router.register("messages", MessageEventViewSet, basename="messageevent")

urlpatterns = [
    path("events/", EventIngestView.as_view(), name="event-ingest"),
    *router.urls,
]
