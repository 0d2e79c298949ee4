"""Development and test helpers: not part of the app, never imported by it."""
