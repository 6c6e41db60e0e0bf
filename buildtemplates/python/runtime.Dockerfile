# The python runtime: the bridge plus Python and the bootstrap. Built once.
ARG GO_IMAGE
ARG BASE_IMAGE
FROM ${GO_IMAGE} AS bridge
WORKDIR /src
COPY bridge/ ./
RUN CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o /out/bridge .

FROM ${BASE_IMAGE}
COPY --from=bridge /out/bridge /opt/fnctl/bridge
COPY bootstrap /var/runtime/bootstrap
ENV LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime PORT=8080 \
    PYTHONUNBUFFERED=1 FNCTL_PYTHON_PACKAGES=/opt/python
WORKDIR /var/task
ENTRYPOINT ["/opt/fnctl/bridge"]
