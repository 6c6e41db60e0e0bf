# The bash runtime: bash, curl and the bootstrap. fnctl adds the bridge.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY bootstrap /var/runtime/bootstrap
