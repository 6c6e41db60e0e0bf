# The go runtime: the bridge on a minimal image. Built once. The base image may
# have no shell (distroless), so the final stage has no RUN.
ARG GO_IMAGE
ARG BASE_IMAGE
FROM ${GO_IMAGE} AS bridge
WORKDIR /src
COPY bridge/ ./
RUN CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o /out/bridge .

FROM ${BASE_IMAGE}
COPY --from=bridge /out/bridge /opt/fnctl/bridge
ENV LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime PORT=8080
WORKDIR /var/task
ENTRYPOINT ["/opt/fnctl/bridge"]
