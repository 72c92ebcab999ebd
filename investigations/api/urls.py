"""Routes of the investigations API, included under ``/api/v1/``."""

from rest_framework.routers import SimpleRouter

from .views import InvestigationViewSet, RemediationActionViewSet

router = SimpleRouter()
router.register("investigations", InvestigationViewSet, basename="investigation")
router.register("actions", RemediationActionViewSet, basename="remediationaction")

urlpatterns = router.urls
