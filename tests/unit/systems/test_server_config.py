"""The model server's one configuration: JSON round trip, refusals by field name, a real restart."""

from __future__ import annotations

import dataclasses
import http.client
import json
import subprocess
import sys

import pytest

from bench.core.errors import BenchError
from bench.systems import http_app
from bench.systems.process import ServerProcess
from bench.systems.server_config import ENV_VAR, ServerConfig


def _config(**overrides) -> ServerConfig:
    return ServerConfig("/models/m.txt", **overrides)


def test_config_round_trips_through_json_and_the_environment():
    config = _config(
        predictor="lleaves",
        num_threads=2,
        app="asgi",
        workers=3,
        gc_freeze=False,
        port=8123,
        store_kind="sqlite",
        store_path="/runs/scores.sqlite",
        aggregate="precomputed",
        aggregate_path="/runs/aggregates.sqlite",
    )
    assert ServerConfig.from_json(config.to_json()) == config
    env = config.env()
    assert set(env) == {ENV_VAR, "OMP_NUM_THREADS"} and env["OMP_NUM_THREADS"] == "2"
    assert ServerConfig.from_env(env) == config
    assert json.loads(env[ENV_VAR])["workers"] == 3  # one JSON object, every field by name
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"num_threads": "2"}, "num_threads"),  # a string is not an int
        ({"workers": True}, "workers"),  # nor a bool
        ({"gc_freeze": 1}, "gc_freeze"),  # nor an int a bool
        ({"num_threads": 0}, "num_threads"),
        ({"app": "flask"}, "app"),
        ({"predictor": "xgboost"}, "predictor"),
        ({"aggregate": "sometimes", "aggregate_path": "/a"}, "aggregate"),
        ({"store_kind": "redis", "store_path": "/s"}, "store_kind"),
        ({"store_kind": "sqlite"}, "store_path"),  # a store without its path
        ({"port": 70_000}, "port"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(overrides, field):
    with pytest.raises(BenchError, match=repr(field)):
        _config(**overrides)
    doc = json.loads(_config().to_json()) | overrides  # the same refusal when the server parses it
    with pytest.raises(BenchError, match=repr(field)):
        ServerConfig.from_json(json.dumps(doc))


def test_parsing_refuses_unknown_and_missing_fields_and_bad_json():
    with pytest.raises(BenchError, match="threads"):
        ServerConfig.from_json(json.dumps({"model_path": "/m.txt", "threads": 2}))
    with pytest.raises(BenchError, match="'model_path' is missing"):
        ServerConfig.from_json("{}")
    with pytest.raises(BenchError, match="not valid JSON"):
        ServerConfig.from_json("{model_path")
    with pytest.raises(BenchError, match=ENV_VAR):
        ServerConfig.from_env({})


def test_the_app_reads_its_configuration_from_the_environment(small_model, monkeypatch):
    config = ServerConfig(str(small_model.path), app="asgi", gc_freeze=False)
    monkeypatch.setenv(ENV_VAR, config.to_json())
    app = http_app.app_from_env()
    assert callable(app) and not hasattr(app, "router")  # the bare ASGI callable, not FastAPI
    scorer = http_app.Scorer(config)
    status, body = scorer.predict(
        json.dumps({"features": http_app.FeatureCheck(http_app.FEATURE_COLUMNS).lo.tolist()}).encode()
    )
    assert status == 200 and scorer.config is config and 0 < json.loads(body)["score"] < 1


def _health(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/health")
    resp = conn.getresponse()
    out = json.loads(resp.read())
    conn.close()
    return out


def test_restart_starts_the_same_configuration_on_the_same_port(small_model, tmp_path):
    """A real uvicorn server (the bare ASGI app: 1–2 s to start on 2 cores), killed, then restarted as
    a supervisor would: two starts, the test's whole cost."""
    server = ServerProcess(ServerConfig(str(small_model.path), app="asgi"), tmp_path / "server.log")
    assert server.port != 0  # chosen once, at construction
    config = server.config
    try:
        server.start(timeout_s=60)
        first = _health(server.port)
        assert first["model_sha256"] == small_model.sha256 and first["pid"] > 0
        server.kill()
        server.restart(timeout_s=60)
        second = _health(server.port)
        assert server.config is config and server.port == config.port
        assert second["model_sha256"] == small_model.sha256 and second["pid"] != first["pid"]
    finally:
        server.stop()
    assert not server.healthy()


def _imported(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.split())


HEAVY = {"fastapi", "starlette", "pydantic", "ray", "matplotlib", "lleaves", "llvmlite", "bench.patterns"}


def test_server_and_refresh_job_import_only_what_they_use(small_model):
    """The ASGI server never imports FastAPI; neither process imports Ray, plots, the patterns or lleaves."""
    report = "import sys; print(' '.join(sys.modules))"
    config = ServerConfig(str(small_model.path), app="asgi", gc_freeze=False)
    build = (
        f"from bench.systems import http_app; http_app.create_asgi_app(http_app.ServerConfig(**{config.__dict__!r}))"
    )
    server = _imported(f"{build}; {report}")
    assert "bench.systems.http_app" in server and not server & HEAVY
    job = _imported(f"import bench.systems.refresh_job; {report}")
    assert "polars" in job and not job & HEAVY
    assert _imported(f"import bench; {report}") & {"numpy", "polars", "lightgbm"} == set()
