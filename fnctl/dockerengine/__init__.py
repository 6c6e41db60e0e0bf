"""The Docker engine: the only package that imports `docker`.

    engine = DockerEngine()                # connects on first use; EnvironmentProblem when none answers
    engine.build(context, tag, reporter); engine.run(image, name, env, labels); engine.stop(id)

Used by the docker builder (fnctl.builders.docker) and the local deployer (fnctl.deployers.local).
"""

from fnctl.dockerengine.engine import Container, DockerEngine

__all__ = ["Container", "DockerEngine"]
