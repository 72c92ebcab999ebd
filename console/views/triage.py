"""The small triage POSTs of an alert's or an incident's page (status, assignment, comment, resolution): one
view each, made by :meth:`Triage.view` from a :class:`~console.forms_alerts.TriageForm` and the service it
feeds, and the bulk bar of their queues (:meth:`Triage.bulk`). Readers are refused (403), a GET is refused
(405)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST

from core.actors import acting_user
from core.exceptions import DomainError

from ..forms_alerts import TriageForm
from .actions import safe_next

# ``service(obj, actor=…, **form.service_kwargs(actor))``: a write of the domain's services module.
Service = Callable[..., object]
Change = Callable[[Any], object]


class Triage:
    """How one kind of object is triaged: who may, the page a triage POST returns to, and the routes of the
    views made here (:meth:`urls`). :meth:`apply` validates, calls the service, says how it went; a subclass
    may say more."""

    def __init__(self, model: type[Model], *, permission: str, noun: str) -> None:
        self.model = model
        self.permission = permission
        self.noun = noun  # the views are named ``console:<noun>_<verb>``, the object's page <noun>_detail
        self.detail = f"console:{noun}_detail"
        self.routes: list[tuple[str, str, Callable[..., HttpResponse]]] = []  # (route, verb, view)

    def urls(self, prefix: str) -> list[URLPattern]:
        """The URL patterns of the views made here, under ``prefix``: ``<prefix>bulk/`` and
        ``<prefix><pk>/<verb>/``, named ``<noun>_<verb>``."""
        return [path(prefix + route, view, name=f"{self.noun}_{verb}") for route, verb, view in self.routes]

    def view(
        self, verb: str, form_class: type[TriageForm], service: Service, done: str, **options: bool
    ) -> Callable[[HttpRequest, int], HttpResponse]:
        """The POST view of ``<pk>/<verb>/`` that feeds ``form_class`` to ``service`` for the object ``pk``;
        ``done`` is the message of a change made. ``options`` go to :meth:`apply`."""

        @require_POST
        @permission_required(self.permission, raise_exception=True)
        def triage_view(request: HttpRequest, pk: int) -> HttpResponse:
            form = form_class(request.POST)

            def change(obj: Any) -> object:
                actor = acting_user(request)
                return service(obj, actor=actor, **form.service_kwargs(actor))

            return self.apply(request, get_object_or_404(self.model, pk=pk), form, change, done, **options)

        self.routes.append((f"<int:pk>/{verb}/", verb, triage_view))
        return triage_view

    def bulk(
        self,
        form_class: type[forms.Form],
        queue: str,
        carry_out: Callable[[HttpRequest, Any], None],
        *,
        separator: str = "; ",
    ) -> Callable[[HttpRequest], HttpResponse]:
        """The POST view of a queue's bulk bar (``bulk/``): an invalid ``form_class`` changes nothing and says
        why (its errors joined by ``separator``); a valid one goes to ``carry_out``, which says what it did.
        Back to the posted ``next``, else the ``queue`` (a URL name)."""

        @require_POST
        @permission_required(self.permission, raise_exception=True)
        def bulk_view(request: HttpRequest) -> HttpResponse:
            back = safe_next(request, reverse(queue))
            form = form_class(request.POST)
            if form.is_valid():
                carry_out(request, form)
            else:
                errors = separator.join(" ".join(map(str, errs)) for errs in form.errors.values())
                messages.error(request, f"Nothing changed. {errors}")
            return redirect(back)

        self.routes.append(("bulk/", "bulk", bulk_view))
        return bulk_view

    def back(self, obj: Model) -> HttpResponse:
        return redirect(self.detail, pk=obj.pk)

    def apply(
        self, request: HttpRequest, obj: Any, form: TriageForm, change: Change, done: str, **options: bool
    ) -> HttpResponse:
        """Validate ``form``, apply ``change`` (a service call) to ``obj``, say how it went, redirect."""
        if not form.is_valid():
            errors = "; ".join(" ".join(map(str, errs)) for errs in form.errors.values())
            messages.error(request, f"Nothing changed. {errors}")
        else:
            try:
                change(obj)
            except DomainError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, done)
        return self.back(obj)
