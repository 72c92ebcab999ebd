"""Routes of the Microsoft 365 API, included under ``/api/v1/``."""

from rest_framework.routers import SimpleRouter

from .views import M365ConnectionViewSet

router = SimpleRouter()
router.register("m365/connections", M365ConnectionViewSet, basename="m365connection")

urlpatterns = router.urls
