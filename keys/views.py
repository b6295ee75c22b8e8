"""The key pages: list, create (the full key is shown once, in the POST's own response) and delete."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.models import User
from accounts.selectors import user_has_verified_email
from keys.forms import ApiKeyCreateForm
from keys.models import ApiKey
from keys.selectors import api_key_get, api_key_list, api_key_list_including_revoked
from keys.services import ApiKeyLimitError, CreatedApiKey, EmailNotVerifiedError, api_key_create, api_key_revoke
from plans.selectors import plan_for_user


def render_key_page(
    request: HttpRequest, *, form: ApiKeyCreateForm, created: CreatedApiKey | None = None, status: int = 200
) -> HttpResponse:
    """The key page; a form with errors is answered 200 like any page, so browsers log no failed request."""
    user: User = request.user
    keys = list(api_key_list(user=user))
    plan = plan_for_user(user=user)
    context = {
        "form": form,
        "keys": keys,
        "plan": plan,
        "at_key_limit": len(keys) >= plan.max_keys,
        "email_verified": user_has_verified_email(user=user),
        "created": created,
    }
    return render(request, "keys/list.html", context, status=status)


@never_cache  # the POST's answer holds the full key: no cache may keep it
@login_required
@require_http_methods(["GET", "POST"])
def key_list(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render_key_page(request, form=ApiKeyCreateForm())
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return render_key_page(request, form=form)
    try:
        created = api_key_create(user=request.user, name=form.cleaned_data["name"], require_verified_email=True)
    except (ApiKeyLimitError, EmailNotVerifiedError) as error:
        form.add_error(None, str(error))
        return render_key_page(request, form=form)
    # Rendered here and nowhere else: the key is in this response only, never in a URL or the session.
    return render_key_page(request, form=ApiKeyCreateForm(), created=created, status=201)


@login_required
@require_http_methods(["GET", "POST"])
def key_delete(request: HttpRequest, key_id: int) -> HttpResponse:
    """GET asks for confirmation, POST deletes; anyone else's key is a 404, exactly like a missing one.

    A key of the user's that is already deleted (Back after deleting, a second tab) leads to the key list.
    """
    if api_key_list_including_revoked(user=request.user).filter(pk=key_id, revoked_at__isnull=False).exists():
        messages.info(request, "That key is already deleted.")
        return redirect("keys:list")
    try:
        api_key = api_key_get(user=request.user, key_id=key_id)
        if request.method == "POST":
            api_key = api_key_revoke(user=request.user, key_id=key_id)
    except ApiKey.DoesNotExist:
        raise Http404("No such key") from None
    if request.method == "GET":
        return render(request, "keys/delete.html", {"api_key": api_key})
    messages.success(request, f"Deleted the key “{api_key.name}” ({api_key.masked}). It no longer works anywhere.")
    return redirect("keys:list")
