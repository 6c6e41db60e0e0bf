# The python runtime: Python and the bootstrap. fnctl adds the bridge.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY bootstrap /var/runtime/bootstrap
ENV PYTHONUNBUFFERED=1 FNCTL_PYTHON_PACKAGES=/opt/python
