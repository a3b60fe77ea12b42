from django.urls import include, path

import views

urlpatterns = [
    path("pqlsdk/", include("pqlsdk.integrations.django.urls")),
    path("settings/sso/", views.sso_settings),
    path("", views.home),
]
