"""A local Ray started for a run asks for Ray's token: a driver without it, or with a wrong one, is
refused; the run's own token joins. Nothing of the token is written under ``$HOME``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.systems.raysession import RaySession

#: A refused join: Ray retries its GCS connection for about 10–30 s on a busy VM before it raises.
JOIN_BOUND_S = 90.0

_JOIN = "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); print('JOINED')"


def _join(address: str, **auth: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    # The local instance is loopback-only; a driver must look for it there too.
    env |= {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **auth}
    return subprocess.run([sys.executable, "-c", _JOIN, address], env=env, capture_output=True, text=True,
                          timeout=JOIN_BOUND_S)


@pytest.fixture
def session(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    s = RaySession(num_cpus=1).start()
    try:
        yield s
    finally:
        s.stop()


def test_a_local_ray_refuses_a_driver_without_the_token(session, tmp_path):
    import ray

    address = ray.get_runtime_context().gcs_address
    assert session.info["auth"] == "token"
    no_token = _join(address, RAY_AUTH_MODE="disabled")
    assert no_token.returncode != 0 and "JOINED" not in no_token.stdout
    wrong = _join(address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64)
    assert wrong.returncode != 0 and "JOINED" not in wrong.stdout
    right = _join(address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=os.environ["RAY_AUTH_TOKEN"])
    assert right.returncode == 0 and "JOINED" in right.stdout, right.stderr[-2000:]
    assert not (tmp_path / ".ray").exists()
