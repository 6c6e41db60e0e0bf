# The go runtime: nothing but the base image; the function's build puts its program in
# /var/runtime/bootstrap. fnctl adds the bridge. The base image may have no shell
# (distroless), so nothing here RUNs.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
