from django.urls import include, path
from rest_framework.routers import SimpleRouter

from .views import EventIngestView, MessageEventViewSet

router = SimpleRouter()
router.register("messages", MessageEventViewSet, basename="messageevent")

urlpatterns = [
    path("events/", EventIngestView.as_view(), name="event-ingest"),
    *router.urls,
    # The directory's read API (layer 1) is mounted here until the root URLconf includes it itself.
    path("", include("mailboxes.api.urls")),
]
