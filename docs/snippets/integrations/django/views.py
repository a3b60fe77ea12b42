from django.http import HttpResponse
from django.template import engines

from pqlsdk.integrations.django import client, require_feature


@require_feature("sso")  # denied: a 403 page with the blocked-feature prompt
def sso_settings(request):
    return HttpResponse("SSO settings")


def home(request):
    if request.pqlsdk.user_id is not None:
        client().track(request.pqlsdk.user_id, "page_viewed", {"path": "/"})
    page = engines["django"].from_string("{% load pqlsdk %}<main>{% pqlsdk_moment %}</main>")
    return HttpResponse(page.render({}, request))
