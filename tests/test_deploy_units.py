"""deploy/'s systemd units run real entry points with the README's settings, so they cannot rot silently."""

from __future__ import annotations

import ast
import configparser
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
ENV_EXAMPLE = DEPLOY / "network.env.example"
#: Where deploy/README.md installs the checkout (with its .venv) and the environment file.
PREFIX = "/opt/network-app"
ENV_FILE = "/etc/network-app/network.env"
SERVICES = ("network-web.service", "network-scheduler.service", "network-migrate.service")
#: Variables systemd itself provides to Exec lines.
SYSTEMD_VARIABLES = {"MAINPID"}


def unit(name: str) -> configparser.ConfigParser:
    """Parse a unit file the way systemd reads it: sections, Key=Value, # and ; comments, case kept."""
    parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",), comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


def exec_argv(name: str, key: str = "ExecStart") -> list[str]:
    """Return an Exec line of a service as its argument list."""
    return shlex.split(unit(name)["Service"][key])


def env_example() -> dict[str, str]:
    """Return the uncommented KEY=value lines of deploy/network.env.example."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def expand(argv: list[str], env: dict[str, str]) -> list[str]:
    """Expand ${VAR} within words and a lone $VAR into its words, as systemd does in Exec lines."""
    out: list[str] = []
    for word in argv:
        lone = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if lone:
            out.extend(env[lone.group(1)].split())
        else:
            out.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env[m.group(1)], word))
    return out


def console_script(path: str) -> str:
    """Return the name of the installed console script an Exec line's program is, or fail."""
    assert path.startswith(f"{PREFIX}/.venv/bin/"), f"{path} is not a program of the installed checkout's venv"
    name = path.rsplit("/", 1)[1]
    assert name in {ep.name for ep in entry_points(group="console_scripts")}, f"no installed entry point {name}"
    return name


def test_every_service_runs_as_the_app_user_in_the_checkout_with_the_env_file() -> None:
    for name in SERVICES:
        service = unit(name)["Service"]
        assert service["WorkingDirectory"] == PREFIX, name
        assert service["EnvironmentFile"] == ENV_FILE, name
        assert service["User"] == service["Group"] == "network-app", name
        console_script(exec_argv(name)[0])


def test_the_target_wants_web_and_scheduler_and_is_not_systemds_network_target() -> None:
    assert not (UNITS / "network.target").exists()
    wants = unit("network-app.target")["Unit"]["Wants"].split()
    assert sorted(wants) == ["network-scheduler.service", "network-web.service"]
    for name in wants:
        parsed = unit(name)
        assert parsed["Install"]["WantedBy"] == "network-app.target"
        assert parsed["Unit"]["PartOf"] == "network-app.target"


def test_migrations_are_never_started_by_themselves() -> None:
    # Two nodes running `db upgrade` at boot would race on the same DDL: it is started by hand.
    assert not unit("network-migrate.service").has_section("Install")
    assert unit("network-migrate.service")["Service"]["Type"] == "oneshot"


def test_the_env_example_defines_every_variable_the_units_use_and_only_real_settings() -> None:
    from network.config import Settings

    env = env_example()
    for name in SERVICES:
        for key in ("ExecStart", "ExecReload", "ExecStartPost"):
            line = unit(name)["Service"].get(key, "")
            used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", line)) - SYSTEMD_VARIABLES
            assert used <= set(env), f"{name} {key} uses {sorted(used - set(env))}, not in {ENV_EXAMPLE.name}"
    settings = {f.upper() for f in Settings.__dataclass_fields__}
    app_keys = {key for key in env if not key.startswith("WEB_")}
    assert app_keys <= settings, f"not settings of network/config.py: {sorted(app_keys - settings)}"


def test_the_web_unit_serves_wsgi_app_with_the_readmes_gunicorn_settings() -> None:
    argv = exec_argv("network-web.service")
    assert console_script(argv[0]) == "gunicorn"
    readme_line = next(line for line in (ROOT / "README.md").read_text().splitlines() if "bin/gunicorn " in line)
    readme = shlex.split(readme_line.split("#", 1)[0])
    # Every option the README's production command gives is in the unit; its fixed values are the same.
    options = [word for word in readme if word.startswith("--")]
    for option in options:
        assert option in argv, f"the README's {option} is missing from network-web.service"
    for option in ("--config", "--worker-class"):
        assert argv[argv.index(option) + 1] == readme[readme.index(option) + 1]
    assert argv[-1] == readme[-1] == "wsgi:app"
    # The hooks module the config names, and the app the target names, are there.
    serving = importlib.import_module(argv[argv.index("--config") + 1].removeprefix("python:"))
    assert callable(serving.post_request) and callable(serving.post_worker_init)
    tree = ast.parse((ROOT / "wsgi.py").read_text())
    assigned = {
        t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)
    }
    assert "app" in assigned


def test_gunicorn_accepts_the_web_units_command_line(tmp_path: Path) -> None:
    """gunicorn's --check-config parses every flag, loads the config module and imports wsgi:app."""
    env = env_example()
    argv = expand(exec_argv("network-web.service"), env)
    argv[0] = str(Path(sys.executable).parent / "gunicorn")
    # The example's servers do not exist here: the app is loaded, not connected.
    run_env = {
        **os.environ,
        **env,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.db'}",
        "RATELIMIT_STORAGE_URI": "memory://",
        "MAIL_URL": "",
    }
    done = subprocess.run([*argv, "--check-config"], cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("name", ["network-scheduler.service", "network-migrate.service"])
def test_the_flask_commands_of_the_units_exist(app, name: str) -> None:  # type: ignore[no-untyped-def]
    service = unit(name)["Service"]
    for key in ("ExecStart", "ExecStartPost"):
        if key not in service:
            continue
        argv = shlex.split(service[key])
        assert console_script(argv[0]) == "flask"
        assert argv[1:3] == ["--app", "wsgi"] and (ROOT / "wsgi.py").exists()
        result = app.test_cli_runner().invoke(args=[*argv[3:], "--help"])
        assert result.exit_code == 0, f"{name} {key}: `flask {' '.join(argv[3:])}` is not a command:\n{result.output}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_reads_the_units_without_a_warning(tmp_path: Path) -> None:
    # The units as installed, with the checkout and env file where this test finds them.
    for path in UNITS.iterdir():
        text = path.read_text().replace(ENV_FILE, str(ENV_EXAMPLE)).replace(PREFIX, str(ROOT))
        text = re.sub(r"^(User|Group)=.*$", r"\1=root", text, flags=re.MULTILINE)
        (tmp_path / path.name).write_text(text)
    units = sorted(str(p) for p in tmp_path.iterdir())
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr + done.stdout


GUIDES = (ROOT / "docs" / "PRODUCTION.md", DEPLOY / "README.md")


def test_every_bench_the_guide_cites_exists() -> None:
    cited = set(re.findall(r"\bbench/([a-z][a-z_]*)\b", (ROOT / "docs" / "PRODUCTION.md").read_text()))
    assert cited, "the guide cites no bench"
    missing = sorted(name for name in cited if not (ROOT / "bench" / name).is_file())
    assert not missing, f"docs/PRODUCTION.md cites bench scripts that do not exist: {missing}"


def test_every_flask_command_the_guides_give_exists(app) -> None:  # type: ignore[no-untyped-def]
    from network import scheduler

    commands = set()
    for guide in GUIDES:
        for match in re.finditer(r"flask --app wsgi ((?:[a-z][a-z_-]* ?)+)", guide.read_text()):
            commands.add(tuple(match.group(1).split()))
    assert ("db", "upgrade") in commands and ("scheduler", "run") in commands
    for words in commands:
        # A group and its command; a third word is an argument (a job id for run-now).
        result = app.test_cli_runner().invoke(args=[*words[:2], "--help"])
        assert result.exit_code == 0, f"`flask {' '.join(words)}` is not a command:\n{result.output}"
        if words[:2] == ("scheduler", "run-now"):
            assert words[2] in {job.id for job in scheduler.JOBS}, f"no job {words[2]}"
