from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import IsAuthenticated

from console.views.account import PasswordChangeDoneView, PasswordChangeView

from .health import healthz

api_v1: list[URLPattern | URLResolver] = [
    path("", include("core.api.urls")),
    path("", include("mailboxes.api.urls")),
    path("", include("mailflow.api.urls")),
    path("", include("restricted_users.api.urls")),
    path("", include("alerts.api.urls")),
    path("", include("investigations.api.urls")),
    path("", include("incidents.api.urls")),
    path("", include("notifications.api.urls")),
    path("", include("m365.api.urls")),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="api-schema"),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/", PasswordChangeView.as_view(), name="password_change"),
    path("account/password/done/", PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("hooks/mailstack/", include("mailstack.urls")),
    path("", include("console.urls")),
]
