"""DRF authentication with `Authorization: Bearer <API key>`."""

from rest_framework import authentication, exceptions

# The module, not the function: DRF imports this class while accounts.services is still loading.
from . import services


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <API key>'.")
        try:
            clear = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        api_key = services.api_key_authenticate(clear)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return api_key.user, api_key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) when credentials are missing.
        return f'{self.keyword} realm="api"'
