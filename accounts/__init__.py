"""Users' accounts, memberships and API keys."""
