"""The local target's deployer: containers on the Docker engine, state in their labels."""
