"""The onboarding emails and the daily onboarding flow, built on the public API of `jobs`."""
