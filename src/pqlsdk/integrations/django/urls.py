"""The moment and outcome endpoints, for ``include("pqlsdk.integrations.django.urls")``.

Names: ``pqlsdk:moment`` and ``pqlsdk:outcome`` (the default template posts to
the latter, so the include is needed wherever ``{% pqlsdk_moment %}`` is used).
"""

from __future__ import annotations

from typing import Final

from django.urls import path  # type: ignore[import-untyped]

from . import views

app_name: Final = "pqlsdk"

urlpatterns = [
    path("moment/", views.moment, name="moment"),
    path("outcome/", views.outcome, name="outcome"),
]
