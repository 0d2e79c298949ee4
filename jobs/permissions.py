"""Scopes: every authenticated endpoint names the scope each of its actions needs."""

from rest_framework.permissions import BasePermission


class HasScope(BasePermission):
    """Allow a request only if its credentials carry the scope its view declares for it.

    A view declares `required_scopes`: a dict from action (viewsets) or lower-case HTTP method
    (plain API views) to a scope. A request whose action declares none is refused, so an endpoint
    can never be open by omission. Credentials with scopes (request.auth with a has_scope method,
    such as an API key) must hold the scope; a logged-in session acts with all of its user's rights.
    """

    def has_permission(self, request, view) -> bool:
        method = request.method.lower()
        if getattr(view, method, None) is None or method == "options":
            # No handler: the view answers 405 itself (OPTIONS too: the project has no metadata class).
            return True
        action = getattr(view, "action", None) or ("get" if method == "head" else method)
        scope = getattr(view, "required_scopes", {}).get(action)
        if scope is None:
            self.message = "This endpoint declares no scope for this request, so it is refused."
            return False
        self.message = f"Your API key does not have the {scope!r} scope."
        has_scope = getattr(request.auth, "has_scope", None)
        return has_scope is None or bool(has_scope(scope))
