"""Ray Serve deployments: the FastAPI ingress and the deployments it composes."""
