"""The price catalogue: sold sizes, billing rules, presets, and bad input refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.analysis import catalogue
from bench.core.errors import BenchError


def _write(tmp_path: Path, table: dict) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(table))
    return path


def _repo() -> dict:
    return yaml.safe_load(catalogue.PRICES_FILE.read_text())


def test_every_preset_of_the_repo_catalogue_loads_and_is_dated():
    cat = catalogue.load_catalogue()
    assert cat.default in cat.presets and len(cat.presets) >= 4
    for p in cat.presets.values():
        assert p.as_of and p.platforms["job"].kind != "function"
    assert all(pl.as_of for pl in cat.platforms.values()) and all(i.as_of for i in cat.line_items.values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t["presets"].pop("aws-spot"), "price preset 'aws-spot' is not in"),
        (lambda t: t["presets"]["aws-spot"].pop("service"), r"presets.aws-spot.service is missing"),
        (lambda t: t["platforms"]["lambda"].pop("per_gib_s"), r"platforms.lambda.per_gib_s is missing"),
        (
            lambda t: t["platforms"]["ec2-on-demand"]["units"]["m7i.large"].update(hour=-0.1),
            r"platforms.ec2-on-demand.units.m7i.large.hour must be > 0, got -0.1",
        ),
        (lambda t: t["line_items"]["broker"].update(per_month=-1), r"line_items.broker.per_month must be >= 0"),
        (lambda t: t["presets"]["aws-spot"].update(target_utilisation=1.5), r"target_utilisation must be in \(0, 1\]"),
        (lambda t: t["presets"]["aws-spot"].update(target_utilisation=0), r"target_utilisation must be in \(0, 1\]"),
        (
            lambda t: t["presets"]["aws-spot"].update(job="azure-batch"),
            "presets.aws-spot.job names an unknown platform",
        ),
        (lambda t: t["presets"]["aws-spot"].update(streaming="lambda"), "cannot be the function platform"),
        (lambda t: t["platforms"]["ec2-spot"].update(kind="mainframe"), r"platforms.ec2-spot.kind must be one of"),
        (lambda t: t["attach"].update(batch=["helpdesk"]), "attach.batch must list known line items"),
    ],
)
def test_bad_catalogues_are_refused_naming_the_field_and_the_file(tmp_path, change, message):
    table = _repo()
    change(table)
    path = _write(tmp_path, table)
    with pytest.raises(BenchError, match=message) as err:
        catalogue.load_prices(path, "aws-spot")
    assert str(path) in str(err.value) or "is not in" in str(err.value)


def test_a_file_can_extend_the_repo_catalogue_by_key(tmp_path):
    path = _write(tmp_path, {"extends": "bench", "line_items": {"load_balancer": {"per_month": 99.0}}})
    p = catalogue.load_prices(path)
    assert p.line_items["load_balancer"].per_month == 99.0 and p.line_items["monitoring"].per_month == 10.0


def test_a_pre_catalogue_price_file_still_loads_as_flat_presets(tmp_path):
    path = _write(tmp_path, {"as_of": "2026-01-01", "presets": {"old": {"vcpu_hour": 0.04, "minimum_s": 60}}})
    p = catalogue.load_prices(path)
    assert p.flat and p.platform("batch", "job").minimum_s == 60 and p.items_for("batch") == []


def test_sizes_round_up_to_what_is_sold_memory_included():
    p = catalogue.load_prices()
    ec2, fargate = p.platform("real-time", "service"), p.platform("batch", "job")
    assert ec2.fit(1, 0.5, "intel")[0].name == "c7i.large"  # the smallest Intel size is 2 vCPU
    assert ec2.fit(1, 0.5, "amd")[0].name == "c7a.medium"
    assert ec2.fit(1, 3.0, "amd")[0].name == "m7a.medium"  # memory decides
    size, _ = fargate.fit(0.3, 2.5)
    assert (size.vcpu, size.gib) == (0.5, 3.0)
    lam = catalogue.load_prices(preset="aws-serverless").platform("real-time", "service")
    assert lam.fit(1, 0.3)[0].gib == pytest.approx(1769 / 1024, abs=1e-3)  # memory that buys one vCPU
    assert fargate.billed_seconds(0.4) == 60 and fargate.billed_seconds(61.2) == 62


def test_the_switches_turn_minimums_startups_and_line_items_off():
    from dataclasses import replace

    p = replace(catalogue.load_prices(), minimums=False, startups=False, line_items_on=False)
    job = p.platform("batch", "job")
    assert job.minimum_s == 0 and job.startup_s == 0 and p.items_for("real-time") == []
