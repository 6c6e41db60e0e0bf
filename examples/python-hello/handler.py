"""Hello from a Python Lambda handler.

    fnctl deploy service hello-py -f examples/python-hello --build-template python
    curl -d '{"name": "Ada"}' "$URL"             # {"message": "Hello, Ada!", ...}

With --build-argument EVENT=API_GATEWAY the event is an API Gateway proxy
event and the handler answers an HTTP response: curl "$URL/?name=Ada".
"""

import json


def handler(event, context):
    if isinstance(event, dict) and "httpMethod" in event:      # API Gateway proxy event
        name = (event.get("queryStringParameters") or {}).get("name") or "world"
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"message": f"Hello, {name}!", "path": event.get("path")}),
        }
    if not isinstance(event, dict):
        raise TypeError(f"expected a JSON object like {{\"name\": \"Ada\"}}, got {type(event).__name__}")
    return {
        "message": f"Hello, {event.get('name') or 'world'}!",
        "function": context.function_name,
        "requestId": context.aws_request_id,
        "remainingMs": context.get_remaining_time_in_millis(),
    }
