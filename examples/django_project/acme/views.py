"""Acme Reports' pages. The pqlsdk parts: ``require_feature("sso")`` and the plan badge."""

from typing import Any

from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from pqlsdk.integrations.django import require_feature

from .demo import CUSTOMERS

REPORTS = [
    ("Weekly revenue", "Finance", "2 hours ago"),
    ("Churn by cohort", "Growth", "yesterday"),
    ("Pipeline coverage", "Sales", "3 days ago"),
    ("Support backlog", "Support", "last week"),
]


def plan(request: HttpRequest) -> dict[str, Any]:
    """Template context: the signed-in customer's plan, read from pqlsdk's state."""
    state = getattr(request, "pqlsdk", None)
    user_id = None if state is None else state.user_id
    if user_id is None:
        return {}
    found = state.client.user(user_id)
    return {"plan": None if found is None else found.traits.get("plan")}


def home(request: HttpRequest) -> HttpResponse:
    return redirect("reports" if request.user.is_authenticated else "login")


def demo_login(request: HttpRequest) -> HttpResponse:
    """Sign in as a demo customer with one click; no passwords in a demo."""
    if request.method == "POST":
        username = request.POST.get("username", "")
        if username not in {customer.username for customer in CUSTOMERS}:
            return redirect("login")
        login(request, get_object_or_404(User, username=username))
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = "/reports/"
        return redirect(target)
    return render(
        request,
        "acme/login.html",
        {"customers": CUSTOMERS, "next": request.GET.get("next", "")},
    )


@require_POST
def demo_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("login")


@login_required
def reports(request: HttpRequest) -> HttpResponse:
    return render(request, "acme/reports.html", {"reports": REPORTS})


@require_feature("sso")  # trial users get the blocked page with its prompt
def sso_settings(request: HttpRequest) -> HttpResponse:
    return render(request, "acme/sso.html")


@login_required
def billing(request: HttpRequest) -> HttpResponse:
    return render(request, "acme/billing.html")
