"""A Python handler with a dependency from PyPI (requirements.txt, installed at build time).

    fnctl deploy service hello-deps -f examples/python-requirements --build-template python
    curl -d '{"text": "Hello"}' "$URL"        # {"text": "Hello", "six": "1.17.0"}

Behind a company proxy with its own certificate authority the build trusts this machine's CA
bundle (SSL_CERT_FILE or the system store) and uses its HTTPS_PROXY: see docs/configuration.md.
"""

import importlib.metadata

import six


def handler(event, context):
    text = event.get("text", "") if isinstance(event, dict) else str(event)
    return {"text": six.ensure_str(text), "six": importlib.metadata.version("six")}
