"""Scope checks for the job API."""

from rest_framework.permissions import BasePermission

ACTION_SCOPES = {
    "create": "job.create",
    "retrieve": "job.read",
    "partial_update": "job.update",
    "destroy": "job.delete",
}


class HasJobScope(BasePermission):
    """Allow an action only if the credentials carry its scope.

    Credentials with scopes (request.auth with a has_scope method, such as an API key) must
    hold the scope; a logged-in session acts with all of its user's rights.
    """

    message = "Your API key does not have the scope this request needs."

    def has_permission(self, request, view) -> bool:
        scope = ACTION_SCOPES.get(getattr(view, "action", None) or "")
        if scope is None:
            return True
        self.message = f"Your API key does not have the {scope!r} scope."
        has_scope = getattr(request.auth, "has_scope", None)
        return has_scope is None or bool(has_scope(scope))
