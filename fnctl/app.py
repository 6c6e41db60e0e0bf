"""The composition root: which builder and deployer serve a command.

    target = choose_target(reporter, local=True)     # Target("local", DockerBuilder, LocalDeployer)
    target.deploy(request, reporter)                 # fnctl.pipeline.deploy over the pair
    objects = dry_run(request, reporter, local=True) # the same pipeline over recording implementations
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fnctl import pipeline
from fnctl.errors import EnvironmentProblem, UsageError
from fnctl.model import DeployRequest, DeployResult, Reporter, ServiceInfo

NO_CLUSTER_NOTE = "no Kubernetes configuration found (KUBECONFIG, ~/.kube/config): using the local Docker engine"


@dataclass
class Target:
    """Where functions run: a builder and a deployer, composed by fnctl.pipeline."""

    name: str
    builder: pipeline.Builder
    deployer: pipeline.Deployer
    images: pipeline.Builder               # ready-made images: finds them, builds nothing

    def deploy(self, request: DeployRequest, reporter: Reporter) -> DeployResult:
        return pipeline.deploy(request, self.images if request.image else self.builder, self.deployer, reporter)

    def list(self) -> list[ServiceInfo]:
        return self.deployer.list()

    def describe(self, name: str) -> ServiceInfo:
        return self.deployer.describe(name)

    def delete(self, name: str, force: bool = False, reporter: Reporter | None = None) -> list[str]:
        return pipeline.delete(name, self.deployer, reporter or pipeline.Silent(), force)

    def logs(self, name: str, follow: bool = False, tail: int | None = None) -> Iterator[str]:
        return self.deployer.logs(name, follow, tail)

    def labelled(self, key: str, value: str) -> list[str]:
        return self.deployer.labelled(key, value)


def has_cluster_config() -> bool:
    try:
        from fnctl.kube import has_cluster_config as found
    except ImportError:      # the cluster path is not installed in this build
        return False
    return found()


def choose_target(reporter: Reporter, local: bool = False, cluster: bool = False,
                  context: str | None = None, namespace: str | None = None, announce: bool = False) -> Target:
    _one_target(local, cluster, context)
    if local:
        return local_target()
    if cluster or context or has_cluster_config():
        if not has_cluster_config():
            raise _no_cluster_config()
        return cluster_target(context, namespace)
    if announce:
        reporter.note(NO_CLUSTER_NOTE)
    return local_target()


# The targets' modules load only when one is chosen: the local one brings `docker` (about 0.4 s to
# import here), the cluster one the registry client; `fnctl --help` needs neither.

def local_target() -> Target:
    from fnctl.builders.docker import DockerBuilder
    from fnctl.builders.image import EngineImage
    from fnctl.deployers.local import LocalDeployer
    from fnctl.dockerengine import DockerEngine

    engine = DockerEngine()                  # one connection, made on first use, for both halves
    return Target("local", DockerBuilder(engine), LocalDeployer(engine), EngineImage(engine))


def cluster_target(context: str | None = None, namespace: str | None = None, *,
                   build_timeout: float | None = None) -> Target:
    """Knative Services built by kaniko. `build_timeout` overrides the request's timeout for builds."""
    from fnctl.builders.image import RegistryImage
    from fnctl.builders.kaniko import KanikoBuilder
    from fnctl.cluster import Cluster
    from fnctl.deployers.knative import KnativeDeployer

    cluster = Cluster(context, namespace)    # one connection, made on first use, for both halves
    return Target("cluster", KanikoBuilder(cluster, build_timeout=build_timeout), KnativeDeployer(cluster),
                  RegistryImage())


def cluster_templates(context: str | None = None, namespace: str | None = None):
    """The build templates stored in the cluster namespace (fnctl.clustertemplates.ClusterTemplates)."""
    from fnctl.cluster import Cluster
    from fnctl.clustertemplates import ClusterTemplates

    if not has_cluster_config():
        raise _no_cluster_config()
    return ClusterTemplates(Cluster(context, namespace))


def dry_run(request: DeployRequest, reporter: Reporter, local: bool = False, cluster: bool = False,
            context: str | None = None, namespace: str | None = None) -> list[dict]:
    """What a deploy would create, validated as a deploy is, without changing anything.

    With --local, the images and the container of the local target; otherwise the
    objects of a first deploy to the cluster (no cluster is needed for that).
    """
    _one_target(local, cluster, context)
    objects: list[dict] = []
    from fnctl.builders.image import ImagePlan

    if local:
        from fnctl.builders.docker import DockerBuildPlan
        from fnctl.deployers.local import LocalDeployPlan

        builder: pipeline.Builder = ImagePlan() if request.image else DockerBuildPlan(objects)
        pipeline.deploy(request, builder, LocalDeployPlan(objects), reporter)
        return objects
    from fnctl.builders.kaniko import KanikoBuildPlan
    from fnctl.cluster import Cluster
    from fnctl.deployers.knative import KnativeDeployPlan

    cluster = Cluster(context, namespace)    # asked only for its namespace, from the kubeconfig
    builder = ImagePlan() if request.image else KanikoBuildPlan(objects, cluster)
    pipeline.deploy(request, builder, KnativeDeployPlan(objects, cluster), reporter)
    return objects


def _no_cluster_config() -> EnvironmentProblem:
    return EnvironmentProblem("no Kubernetes configuration found, but the cluster was asked for",
                              "set KUBECONFIG or create ~/.kube/config (e.g. `kubectl config view`), or use --local")


def _one_target(local: bool, cluster: bool, context: str | None) -> None:
    if local and (cluster or context):
        raise UsageError("--local cannot be combined with --cluster or --context", "pick one target")
