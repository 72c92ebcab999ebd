"""Routes of the notifications API, included under ``/api/v1/``."""

from rest_framework.routers import SimpleRouter

from .views import WebhookEndpointViewSet

router = SimpleRouter()
router.register("webhooks", WebhookEndpointViewSet, basename="webhookendpoint")

urlpatterns = router.urls
