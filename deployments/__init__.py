"""What runs on Ray, composed: the Serve deployments (the FastAPI ingress and what it composes) and their
routes, the composition root (`app.py`: the application graph of `cluster/deploy/serve.yaml`), the
WebSocket gateway actors, and the `gpubroker` command (`cli.py`). The only folder that may import all the others."""
