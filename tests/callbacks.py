"""The on-commit callbacks a test captured that send a job's message (not those that announce a change to live streams)."""

from jobs import services


def sends(callbacks: list) -> list:
    return [callback for callback in callbacks if getattr(callback, "func", None) is not services._tell_watchers]
