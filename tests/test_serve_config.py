"""cluster/deploy/serve.yaml is a Serve config Serve accepts, configures every deployment the builder makes,
is what KubeRay's RayService carries, and deploys onto a running Ray the way `serve deploy` does."""
from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import httpx
import yaml
from ray._common.utils import import_attr
from ray.serve._private.build_app import build_app as serve_build
from ray.serve.config import AutoscalingConfig
from ray.serve.deployment import deployment_to_schema
from ray.serve.schema import DeploymentSchema, LoggingConfig, ServeDeploySchema

from cluster.serve_config import SECRET_SETTINGS, SERVE_CONFIG, deployment_options, read_serve_config, serve_config
from cluster.settings import Settings
from deployments.app import build_app, compose

DEPLOY = Path(__file__).resolve().parent.parent / "cluster" / "deploy"
OPTIONS_IN_THE_FILE = ("max_ongoing_requests", "autoscaling_config", "ray_actor_options")


def _comparable(schema: DeploymentSchema) -> dict:
    """The options a deployment sets, its autoscaling and logging configs filled in with Serve's defaults
    (a built deployment carries them whole)."""
    d = schema.model_dump(exclude_unset=True)
    for key, model in (("autoscaling_config", AutoscalingConfig), ("logging_config", LoggingConfig)):
        if d.get(key):
            d[key] = model.model_validate(d[key]).model_dump()
    return d


def test_serve_schema_accepts_the_file_and_every_deployment_is_configured_there():
    raw = yaml.safe_load(SERVE_CONFIG.read_text())
    config = ServeDeploySchema.model_validate(raw)
    (app,) = config.applications
    assert app.import_path == "deployments.app:build_app"
    assert [d.name for d in app.deployments] == ["Ingress", "Search", "Forecast", "Chat"]
    for d in app.deployments:
        assert set(OPTIONS_IN_THE_FILE) <= d.model_dump(exclude_unset=True).keys(), d.name
        assert d.max_ongoing_requests == 256  # Serve's default of 5 collapses throughput
        assert d.ray_actor_options.num_cpus == 0
        assert 1 <= d.autoscaling_config["min_replicas"] <= d.autoscaling_config["max_replicas"]


def test_the_builder_makes_what_the_file_configures_and_code_sets_no_options(settings):
    """The Python equivalent of `serve build` (which takes only an Application, not a builder)."""
    raw = read_serve_config()
    (app,) = raw["applications"]
    builder = import_attr(app["import_path"].replace(":", "."))
    assert builder is build_app
    built = serve_build(builder({**app["args"], "settings": {"http_port": settings.http_port}}), name=app["name"])
    in_code = {d.name: deployment_to_schema(d).model_dump(exclude_unset=True) for d in built.deployments}
    assert in_code == {d["name"]: {"name": d["name"]} for d in app["deployments"]}  # every option from the file

    # What `gpubroker up` deploys: the same graph with the file's options, deployment by deployment
    composed = serve_build(compose(settings, deployment_options(app)), name=app["name"])
    assert {d.name: _comparable(deployment_to_schema(d)) for d in composed.deployments} == {
        d["name"]: _comparable(DeploymentSchema.model_validate(d)) for d in app["deployments"]}


def test_settings_override_only_what_they_set(settings):
    file_app = read_serve_config()["applications"][0]
    s = settings.with_overrides(search_replicas_max=3, chat_replicas_min=None, max_ongoing_requests=100,
                                http_host="127.0.0.2", vault_token="s3cret")
    config = serve_config(s)
    assert config["http_options"] == {"host": "127.0.0.2", "port": settings.http_port}
    (app,) = config["applications"]
    by_name = {d["name"]: d for d in app["deployments"]}
    assert by_name["Search"]["autoscaling_config"]["max_replicas"] == 3
    assert by_name["Ingress"]["autoscaling_config"]["max_replicas"] == 1  # the test session's setting
    assert by_name["Chat"]["autoscaling_config"]["min_replicas"] == file_app["deployments"][3]["autoscaling_config"]["min_replicas"]
    assert {d["max_ongoing_requests"] for d in app["deployments"]} == {100}
    assert {d["autoscaling_config"]["target_ongoing_requests"] for d in app["deployments"]} == {25}
    assert app["runtime_env"]["env_vars"]["PROMETHEUS_MULTIPROC_DIR"] == str((settings.state_dir / "metrics").resolve())
    assert SECRET_SETTINGS.isdisjoint(app["args"]["settings"]) and "s3cret" not in repr(config)
    assert Settings.model_validate({**app["args"]["settings"], "vault_token": "s3cret"}) == s
    # without overrides the file's values stand
    plain = serve_config(settings.with_overrides(ingress_replicas_max=None))
    assert [d["autoscaling_config"] for d in plain["applications"][0]["deployments"]] == [
        d["autoscaling_config"] for d in file_app["deployments"]]


def test_rayservice_carries_the_serve_config_and_what_kuberay_requires():
    manifest = yaml.safe_load((DEPLOY / "rayservice.yaml").read_text())
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayService"
    assert manifest["metadata"]["name"]
    spec = manifest["spec"]
    assert spec["serveConfigV2"] == SERVE_CONFIG.read_text()  # the same file, byte for byte
    cluster = spec["rayClusterConfig"]
    assert cluster["rayVersion"] == __import__("ray").__version__
    head = cluster["headGroupSpec"]
    workers = cluster["workerGroupSpecs"]
    assert isinstance(head["rayStartParams"], dict) and all(isinstance(v, str) for v in head["rayStartParams"].values())
    assert workers and len({w["groupName"] for w in workers}) == len(workers)
    image = "gpubroker:0.1.0"
    assert f"-t {image} ." in (DEPLOY / "Dockerfile").read_text()  # the image the Dockerfile builds
    assert head["template"]["spec"]["containers"][0]["image"] == image
    for w in workers:
        assert 0 <= w["minReplicas"] <= w["replicas"] <= w["maxReplicas"]
        assert w["template"]["spec"]["containers"][0]["image"].startswith(image)
    ports = {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert yaml.safe_load(spec["serveConfigV2"])["http_options"]["port"] in ports


async def test_serve_deploy_of_the_file_answers(serve_app, settings):
    """The file deployed as `serve deploy` does (the controller runs the builder named by import_path), as a
    second application of the ingress alone under /serve-yaml."""
    from ray import serve
    from ray.serve._private.api import serve_start

    config = copy.deepcopy(serve_config(settings))
    (app,) = config["applications"]
    app.update(name="serve-yaml", route_prefix="/serve-yaml")
    app["args"]["parts"] = []
    app["deployments"] = [d for d in app["deployments"] if d["name"] == "Ingress"]
    client = serve_start(http_options=config["http_options"])
    await asyncio.to_thread(client.deploy_apps, ServeDeploySchema.model_validate(config), _blocking=True)
    try:
        status = serve.status().applications["serve-yaml"]
        assert status.status == "RUNNING", status
        assert set(status.deployments) == {"Ingress"}
        async with httpx.AsyncClient(base_url=serve_app, timeout=15) as c:
            for _ in range(150):  # the proxy learns the new prefix shortly after the app runs: until then, 404
                r = await c.get("/serve-yaml/health")
                if r.status_code != 404:
                    break
                await asyncio.sleep(0.2)
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "ok"}
    finally:
        await asyncio.to_thread(serve.delete, "serve-yaml")
