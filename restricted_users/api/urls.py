from rest_framework.routers import SimpleRouter

from .views import RestrictionViewSet

router = SimpleRouter()
router.register("restrictions", RestrictionViewSet, basename="restriction")

urlpatterns = router.urls
