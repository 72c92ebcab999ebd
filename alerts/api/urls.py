"""Routes of the alerts API, included under ``/api/v1/``."""

from rest_framework.routers import SimpleRouter

from .views import AlertPolicyViewSet, AlertViewSet

router = SimpleRouter()
router.register("alerts", AlertViewSet, basename="alert")
router.register("policies", AlertPolicyViewSet, basename="alertpolicy")

urlpatterns = router.urls
