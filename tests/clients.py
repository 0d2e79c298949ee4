"""Test clients for the API."""

from rest_framework.test import APIClient


def bearer_client(key: str) -> APIClient:
    """Return a DRF test client that sends `key` as `Authorization: Bearer <key>`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client
