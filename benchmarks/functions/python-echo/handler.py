"""Echo: answers every event with a prefix and the event itself."""

PREFIX = ""


def handler(event, context):
    return {"prefix": PREFIX, "event": event}
