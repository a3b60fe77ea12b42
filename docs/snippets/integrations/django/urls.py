import views
from django.urls import include, path

urlpatterns = [
    path("pqlsdk/", include("pqlsdk.integrations.django.urls")),
    path("settings/sso/", views.sso_settings),
    path("", views.home),
]
