"""Acme Reports' pages, and pqlsdk's moment and outcome endpoints under /pqlsdk/."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.demo_login, name="login"),
    path("logout/", views.demo_logout, name="logout"),
    path("reports/", views.reports, name="reports"),
    path("settings/sso/", views.sso_settings, name="sso"),
    path("billing/", views.billing, name="billing"),
    path("pqlsdk/", include("pqlsdk.integrations.django.urls")),
]
