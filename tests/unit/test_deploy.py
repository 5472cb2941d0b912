"""The deployment files say what the Procfile says: one command per process, the same everywhere
(Heroku's app.json, the Dockerfile, compose.yaml), and production settings that start."""

import json
import re
from pathlib import Path

import yaml

from config import Config
from devstack import read_procfile

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = read_procfile(ROOT / "Procfile")
PROCESSES = {name for name in PROCFILE if name != "release"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def shell_line(command: list[str]) -> str:
    """A compose `sh -c` command as the shell sees it (compose turns `$$` into `$`)."""
    assert command[:2] == ["sh", "-c"] and len(command) == 3, command
    return command[2].replace("$$", "$")


def test_compose_runs_every_procfile_process_with_its_procfile_command():
    services = compose()["services"]
    assert {"postgres", "redis", "migrate"} | PROCESSES <= set(services)
    for name in PROCESSES:
        assert shell_line(services[name]["command"]) == PROCFILE[name], name
    assert shell_line(services["migrate"]["command"]) == PROCFILE["release"]
    for name in PROCESSES:  # nothing starts before the migration finished
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["simulator"]["profiles"] == ["sim"]
    assert set(services) == {"postgres", "redis", "migrate", "simulator"} | PROCESSES


def test_one_image_runs_as_a_user_and_installs_production_requirements_only():
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)$", dockerfile, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "pip install --require-hashes -r requirements.txt" in dockerfile
    assert "requirements-dev" not in dockerfile
    (cmd,) = re.findall(r"^CMD (.+)$", dockerfile, flags=re.MULTILINE)
    assert shell_line(json.loads(cmd)) == PROCFILE["web"]
    assert {"image": "paper-trading", "build": "."}.items() <= compose()["services"]["web"].items()


def test_heroku_app_json_runs_every_process_and_its_settings_start_in_production():
    manifest = json.loads((ROOT / "app.json").read_text())
    assert set(manifest["formation"]) == PROCESSES
    env = manifest["env"]
    assert env["JWT_SECRET_KEY"]["generator"] == "secret"
    assert env["PUBLIC_URL"]["required"] and env["SMTP_URL"]["required"]
    plans = {addon["plan"].split(":")[0] for addon in manifest["addons"]}
    assert plans == {"heroku-postgresql", "heroku-redis"}
    # What Heroku sets: the add-ons' URLs, the generated secret, the values and what the user typed in.
    heroku = {name: spec.get("value", "typed-in") for name, spec in env.items()}
    heroku |= {
        "DATABASE_URL": "postgres://u:p@ec2.example:5432/d",
        "REDIS_URL": "rediss://:p@ec2.example:6380",
        "JWT_SECRET_KEY": "g" * 64,
        "PUBLIC_URL": "https://paper.example",
        "SMTP_URL": "smtp://u:p@mail.example:587",
    }
    config = Config.from_env(heroku)
    assert config.APP_ENV == "production" and config.REDIS_OPTIONS == {"ssl_cert_reqs": "none"}
    assert config.SQLALCHEMY_DATABASE_URI.startswith("postgresql+psycopg://")
