"""Builders: the first half of a target (fnctl.pipeline.Builder).

`docker.DockerBuilder` builds on the local Docker engine; `kaniko.KanikoBuilder`
runs a kaniko pod per image in the cluster and pushes to its registry. Each has
a twin that only records what it would build, for dry runs.
"""
