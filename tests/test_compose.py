"""docker-compose.yml and the Dockerfile, checked as files: no docker engine runs here.

What is checked: the services and their pinned images, published ports, the start-up
order (``depends_on`` conditions backed by health checks), Temporal's PostgreSQL schema
setup, that the worker's and setup's commands are ones the ``kitcn-temporal`` CLI
accepts for the reference app, and that Prometheus scrapes the worker's metrics port and
Grafana reads that Prometheus and the dashboard of deploy/. What is not: that the images pull
and the stack starts (tests/test_alerting.py runs Debian's Prometheus on a real worker).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from conftest import ROOT
from kitcn_temporal import App
from kitcn_temporal.cli import build_parser
from workflows import crons as crons_module

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()

#: Each service and what it waits for, with the condition.
START_ORDER = {
    "postgresql": {},
    "temporal-schema": {"postgresql": "service_healthy"},
    "temporal": {"temporal-schema": "service_completed_successfully"},
    "temporal-namespace": {"temporal": "service_healthy"},
    "temporal-ui": {"temporal": "service_healthy"},
    "kitcn-setup": {"temporal-namespace": "service_completed_successfully"},
    "kitcn-worker": {"kitcn-setup": "service_completed_successfully", "postgresql": "service_healthy"},
    "prometheus": {},
    "grafana": {"prometheus": "service_healthy"},
}
#: Services that run once and exit.
ONE_SHOT = ("temporal-schema", "temporal-namespace", "kitcn-setup")


def interpolate(text: str) -> str:
    """What compose makes of ``${VAR:-default}`` when VAR is unset, and of ``$$``."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text).replace("$$", "$")


def env(service: str) -> dict[str, str]:
    return {key: interpolate(str(value)) for key, value in SERVICES[service].get("environment", {}).items()}


def test_the_services_are_postgres_temporal_its_ui_the_kitcn_worker_and_its_monitoring() -> None:
    assert set(SERVICES) == set(START_ORDER)


@pytest.mark.parametrize("service", [s for s in START_ORDER if "image" in SERVICES[s] and "build" not in SERVICES[s]])
def test_every_pulled_image_is_pinned_to_a_version(service: str) -> None:
    tag = SERVICES[service]["image"].partition(":")[2]
    assert tag and tag != "latest" and re.fullmatch(r"v?\d+(\.\d+)+", tag), SERVICES[service]["image"]


def test_images_are_postgres_16_and_one_temporal_release() -> None:
    images = {name: SERVICES[name]["image"] for name in ("postgresql", "temporal", "temporal-schema", "temporal-ui")}
    assert images["postgresql"].startswith("postgres:16.")
    assert images["temporal"].startswith("temporalio/server:")
    assert images["temporal-ui"].startswith("temporalio/ui:")
    server_version = images["temporal"].partition(":")[2]
    assert SERVICES["temporal-schema"]["image"] == SERVICES["temporal-namespace"]["image"]
    assert images["temporal-schema"] == f"temporalio/admin-tools:{server_version}"


def test_published_ports_are_the_frontend_the_ui_and_monitoring_on_loopback_only() -> None:
    published = {name: service.get("ports", []) for name, service in SERVICES.items() if service.get("ports")}
    assert published == {
        "temporal": ["7233:7233"],
        "temporal-ui": ["8080:8080"],
        # Prometheus has no login: reachable from the host only.
        "prometheus": ["127.0.0.1:9090:9090"],
        "grafana": ["127.0.0.1:3000:3000"],
    }


@pytest.mark.parametrize("service", list(START_ORDER))
def test_start_order_is_enforced_by_depends_on_conditions(service: str) -> None:
    depends = SERVICES[service].get("depends_on", {})
    assert {name: spec["condition"] for name, spec in depends.items()} == START_ORDER[service]


@pytest.mark.parametrize(
    "service", sorted({dep for deps in START_ORDER.values() for dep, cond in deps.items() if cond == "service_healthy"})
)
def test_services_waited_on_for_health_have_a_health_check(service: str) -> None:
    check = SERVICES[service]["healthcheck"]
    assert check["test"] and check["retries"] > 0 and check["interval"]


def test_postgres_health_is_pg_isready() -> None:
    assert "pg_isready" in " ".join(SERVICES["postgresql"]["healthcheck"]["test"])


def test_the_ui_has_a_health_check() -> None:
    assert "8080" in " ".join(SERVICES["temporal-ui"]["healthcheck"]["test"])


@pytest.mark.parametrize("service", ONE_SHOT)
def test_one_shot_services_restart_only_on_failure(service: str) -> None:
    assert SERVICES[service]["restart"].startswith("on-failure")


@pytest.mark.parametrize("database", ["temporal", "temporal_visibility"])
def test_schema_setup_creates_and_migrates_both_temporal_databases(database: str) -> None:
    script = interpolate(" ".join(SERVICES["temporal-schema"]["command"]))
    steps = [line.strip() for line in script.splitlines() if f"--db {database} " in line]
    assert [step.split()[3] for step in steps] == ["create-database", "setup-schema", "update-schema"]
    folder = "temporal" if database == "temporal" else "visibility"
    assert steps[2].endswith(f'"$schema/{folder}/versioned"') and "schema=/etc/temporal/schema/postgresql/v12" in script
    assert env("temporal-schema")["SQL_PLUGIN"] == "postgres12" and env("temporal-schema")["SQL_HOST"] == "postgresql"


def test_temporal_runs_on_postgresql_with_the_same_credentials_as_the_schema_setup() -> None:
    server, schema = env("temporal"), env("temporal-schema")
    assert (server["DB"], server["POSTGRES_SEEDS"]) == ("postgres12", "postgresql")
    assert (server["POSTGRES_USER"], server["POSTGRES_PWD"]) == (schema["SQL_USER"], schema["SQL_PASSWORD"])
    assert server["POSTGRES_PWD"] == env("postgresql")["POSTGRES_PASSWORD"]


def test_temporal_reads_the_dynamic_config_it_is_given() -> None:
    (mount,) = SERVICES["temporal"]["configs"]
    assert mount["target"] == env("temporal")["DYNAMIC_CONFIG_FILE_PATH"]
    config = yaml.safe_load(COMPOSE["configs"][mount["source"]]["content"])
    assert config["limit.blobSize.error"][0]["value"] == 2 * 1024 * 1024


def test_the_namespace_is_created_with_seven_day_retention() -> None:
    script = " ".join(SERVICES["temporal-namespace"]["command"])
    assert "temporal operator namespace create -n default --retention 7d" in script
    assert env("temporal-namespace")["TEMPORAL_ADDRESS"] == "temporal:7233"


@pytest.mark.parametrize("service", ["temporal-ui", "kitcn-setup", "kitcn-worker"])
def test_clients_reach_temporal_at_its_service_name(service: str) -> None:
    assert env(service)["TEMPORAL_ADDRESS"] == "temporal:7233"


@pytest.mark.parametrize("service", ["kitcn-setup", "kitcn-worker"])
def test_kitcn_services_are_built_from_the_dockerfile(service: str) -> None:
    assert SERVICES[service]["build"] == "."
    assert SERVICES[service]["image"] == SERVICES["kitcn-setup"]["image"]


def test_kitcn_setup_runs_the_setup_command() -> None:
    args = build_parser().parse_args(SERVICES["kitcn-setup"]["command"][1:])
    assert SERVICES["kitcn-setup"]["command"][0] == "kitcn-temporal" and args.command == "setup"
    assert env("kitcn-setup")["TEMPORAL_NAMESPACE"] == "default"


def test_the_worker_command_serves_the_reference_app_and_its_crons() -> None:
    command = [interpolate(part) for part in SERVICES["kitcn-worker"]["command"]]
    args = build_parser().parse_args(command[1:])
    assert command[0] == "kitcn-temporal" and args.command == "worker"
    assert (args.app, args.crons) == ("activities", "workflows.crons:crons")
    module, _, attr = args.crons.partition(":")
    assert module == crons_module.__name__ and len(getattr(crons_module, attr)) == 2
    assert App.discover(args.app).procedures


def test_the_worker_keeps_the_app_data_in_its_own_postgres_database() -> None:
    command = [interpolate(part) for part in SERVICES["kitcn-worker"]["command"]]
    url = make_url(build_parser().parse_args(command[1:]).database)
    assert (url.drivername, url.host, url.port) == ("postgresql+asyncpg", "postgresql", 5432)
    init_sql = interpolate(COMPOSE["configs"]["kitcn-app-database"]["content"])
    assert f"CREATE ROLE {url.username} LOGIN PASSWORD '{url.password}';" in init_sql
    assert f"CREATE DATABASE {url.database} OWNER {url.username};" in init_sql
    (mount,) = SERVICES["postgresql"]["configs"]
    assert mount["target"].startswith("/docker-entrypoint-initdb.d/") and mount["target"].endswith(".sql")


def test_postgres_keeps_its_data_in_a_named_volume() -> None:
    (volume,) = SERVICES["postgresql"]["volumes"]
    name, _, path = volume.partition(":")
    assert name in COMPOSE["volumes"] and path == "/var/lib/postgresql/data"


def test_dockerfile_builds_python_311_with_the_sql_extra() -> None:
    assert re.search(r"^FROM python:3\.11-slim\s*$", DOCKERFILE, re.M)
    assert re.search(r"^RUN pip install -c constraints\.txt '\.\[sql\]'$", DOCKERFILE, re.M)
    copied = re.findall(r"^COPY (\S+) ", DOCKERFILE, re.M)
    assert {"kitcn_temporal", "activities", "workflows"} <= set(copied)


def test_dockerfile_command_is_the_worker_of_the_compose_file() -> None:
    (cmd,) = re.findall(r"^CMD (\[.*\])$", DOCKERFILE, re.M)
    command = json.loads(cmd)
    args = build_parser().parse_args(command[1:])
    assert command[0] == "kitcn-temporal" and args.command == "worker"
    assert (args.app, args.crons) == ("activities", "workflows.crons:crons")
    assert SERVICES["kitcn-worker"]["command"][: len(command)] == command


# -- monitoring: Prometheus scrapes the workers, Grafana shows them --------------------------

DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())


def mounts(service: str) -> dict[str, str]:
    """A service's volumes from this folder: container path -> path in the repository."""
    found = {}
    for volume in SERVICES[service]["volumes"]:
        source, _, rest = volume.partition(":")
        if source.startswith("./"):
            found[rest.removesuffix(":ro")] = source
    return found


def test_the_worker_serves_prometheus_metrics_on_port_9464_on_every_interface() -> None:
    command = [interpolate(part) for part in SERVICES["kitcn-worker"]["command"]]
    args = build_parser().parse_args(command[1:])
    assert (args.metrics_port, args.metrics_host) == (9464, "0.0.0.0")


def test_prometheus_scrapes_every_worker_container_on_the_metrics_port() -> None:
    (job,) = [j for j in PROMETHEUS_CONFIG["scrape_configs"] if j["job_name"] == "kitcn-worker"]
    (discovery,) = job["dns_sd_configs"]  # one record per container: --scale is followed
    assert (discovery["names"], discovery["type"], discovery["port"]) == (["kitcn-worker"], "A", 9464)


def test_prometheus_reads_deploy_prometheus_with_kitcns_rules_read_only() -> None:
    assert mounts("prometheus") == {"/etc/prometheus": "./deploy/prometheus"}
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    for rules in PROMETHEUS_CONFIG["rule_files"]:
        assert (DEPLOY / "prometheus" / rules).is_file(), rules
    assert "kitcn-rules.yml" in PROMETHEUS_CONFIG["rule_files"]
    assert all(volume.endswith(":ro") for volume in SERVICES["prometheus"]["volumes"] if volume.startswith("./"))


@pytest.mark.parametrize("service", ["prometheus", "grafana"])
def test_monitoring_keeps_its_data_in_a_named_volume(service: str) -> None:
    named = [v.partition(":")[0] for v in SERVICES[service]["volumes"] if not v.startswith("./")]
    assert len(named) == 1 and named[0] in COMPOSE["volumes"]


def test_grafanas_data_source_is_the_prometheus_service() -> None:
    provisioning = mounts("grafana")["/etc/grafana/provisioning"]
    config = yaml.safe_load((ROOT / provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = config["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == ("prometheus", "http://prometheus:9090", True)
    assert SERVICES["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]


def test_grafana_loads_the_kitcn_dashboard_from_where_it_is_mounted() -> None:
    grafana = mounts("grafana")
    provider = yaml.safe_load((ROOT / grafana["/etc/grafana/provisioning"] / "dashboards" / "kitcn.yml").read_text())
    (folder,) = [p["options"]["path"] for p in provider["providers"]]
    (target,) = [t for t in grafana if t.startswith(folder + "/")]
    assert grafana[target] == "./deploy/grafana/kitcn-dashboard.json" and (ROOT / grafana[target]).is_file()
    assert env("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == target
    assert json.loads((ROOT / grafana[target]).read_text())["uid"] == "kitcn-temporal"
