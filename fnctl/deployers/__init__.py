"""Deployers: the second half of a target (fnctl.pipeline.Deployer).

`local.LocalDeployer` runs revisions as containers on the Docker engine with a
zero-downtime swap; `knative.KnativeDeployer` creates or updates a Knative
Service and waits for it. Each has a twin that only records what it would do,
for dry runs.
"""
