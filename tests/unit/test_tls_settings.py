"""TLS settings (tasks.core.tls): one configuration for the broker, the results and the
coordination Redis, verified by default, with a URL's ssl_* options on top."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from celery import Celery

from tasks.core.config import from_env
from tasks.core.errors import ConfigurationError
from worker.settings import celery_config

REDIS = "rediss://:pw@cache.example.com:6379/0"
AMQP = "amqps://user:pw@b-1.mq.eu-west-1.amazonaws.com:5671/prod"


@pytest.fixture()
def pems(tmp_path: Path) -> dict[str, str]:
    found = {}
    for name in ("ca", "cert", "key"):
        path = tmp_path / f"{name}.pem"
        path.write_text("not checked here\n")
        found[name] = str(path)
    return found


def test_a_bare_rediss_url_verifies_on_all_three_connections() -> None:
    cfg = from_env({"CELERY_BROKER_URL": REDIS})
    want = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_check_hostname": True}
    assert cfg.broker.ssl == cfg.backend.ssl == cfg.redis.ssl == want
    conf = celery_config(cfg)
    assert conf["broker_use_ssl"] == conf["redis_backend_use_ssl"] == want
    assert conf["broker_url"] == conf["result_backend"] == REDIS


def test_the_settings_reach_every_connection_and_url_options_win(pems: dict[str, str]) -> None:
    env = {
        "CELERY_BROKER_URL": AMQP,
        "REPLICATOR_REDIS_URL": f"{REDIS}?ssl_cert_reqs=none&socket_timeout=3",
        "REPLICATOR_TLS_CA_FILE": pems["ca"],
        "REPLICATOR_TLS_CERT_FILE": pems["cert"],
        "REPLICATOR_TLS_KEY_FILE": pems["key"],
    }
    cfg = from_env(env)
    conf = celery_config(cfg)
    assert conf["broker_use_ssl"] == {
        "cert_reqs": ssl.CERT_REQUIRED,
        "ca_certs": pems["ca"],
        "certfile": pems["cert"],
        "keyfile": pems["key"],
        "server_hostname": None,  # kombu fills in the broker's name: the name is checked
    }
    # the URL's own option wins for that URL; other query options stay in the URL
    assert cfg.redis.url == f"{REDIS}?socket_timeout=3"
    assert cfg.redis.ssl is not None and cfg.redis.ssl["ssl_cert_reqs"] == ssl.CERT_NONE
    assert cfg.redis.ssl["ssl_check_hostname"] is False
    assert cfg.redis.ssl["ssl_ca_certs"] == pems["ca"]
    assert conf["redis_backend_use_ssl"] == {  # results default to the Redis URL
        "ssl_cert_reqs": ssl.CERT_NONE,
        "ssl_check_hostname": False,
        "ssl_ca_certs": pems["ca"],
        "ssl_certfile": pems["cert"],
        "ssl_keyfile": pems["key"],
    }


def test_amqps_url_options_are_translated_for_py_amqp(
    pems: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{AMQP}?ssl_cert_reqs=required&ssl_ca_certs={pems['ca']}&heartbeat=5"
    conf = celery_config(from_env({"CELERY_BROKER_URL": url}))
    assert conf["broker_url"] == f"{AMQP}?heartbeat=5"
    assert conf["broker_use_ssl"] == {
        "cert_reqs": ssl.CERT_REQUIRED,
        "ca_certs": pems["ca"],
        "server_hostname": None,
    }
    # Celery prefers the environment's CELERY_BROKER_URL to broker_url: the connection it
    # builds must still be the URL without ssl_* options (py-amqp refuses them), with the options
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app = Celery("tls-test", set_as_current=False)
    app.conf.update(conf)
    for connection in (app.connection_for_write(), app.connection_for_read()):
        assert "ssl_" not in connection.as_uri() and connection.ssl == conf["broker_use_ssl"]
    app.close()


def test_verification_is_off_only_when_asked() -> None:
    cfg = from_env({"CELERY_BROKER_URL": AMQP, "REPLICATOR_TLS_VERIFY": "false"})
    assert cfg.broker.ssl == {"cert_reqs": ssl.CERT_NONE}
    assert from_env({"CELERY_BROKER_URL": "redis://r:6379/0"}).broker.ssl is None
    assert "broker_use_ssl" not in celery_config(from_env({"CELERY_BROKER_URL": "redis://r/0"}))


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"REPLICATOR_TLS_VERIFY": "maybe"}, "REPLICATOR_TLS_VERIFY='maybe' must be true or false"),
        ({"REPLICATOR_TLS_CA_FILE": "/nonexistent/ca.pem"}, "cannot be read"),
        ({"REPLICATOR_TLS_KEY_FILE": __file__}, "go together (mutual TLS)"),
        ({"CELERY_BROKER_URL": f"{AMQP}?ssl_version=3"}, "unknown TLS option ssl_version"),
        ({"CELERY_BROKER_URL": f"{REDIS}?ssl_cert_reqs=sometimes"}, "required, optional or none"),
        ({"CELERY_BROKER_URL": "redis://r/0?ssl_cert_reqs=none"}, "use rediss:// or amqps://"),
        ({"REPLICATOR_REDIS_URL": "http://:pw@r/0"}, "redis://, rediss:// (TLS) or unix://"),
        ({"CELERY_BROKER_URL": "sqs://x"}, "amqp:// or amqps://"),
    ],
)
def test_bad_tls_settings_are_refused_in_one_line(env: dict[str, str], said: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        from_env(env)
    message = str(refused.value)
    assert said in message
    assert "\n" not in message and ":pw@" not in message
