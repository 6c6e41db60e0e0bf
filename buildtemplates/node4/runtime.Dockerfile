# The node4 runtime: Node.js and the bootstrap. fnctl adds the bridge.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY bootstrap /var/runtime/bootstrap
ENV NODE_PATH=/opt/nodejs/node_modules
