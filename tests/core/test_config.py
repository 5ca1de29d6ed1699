from pathlib import Path

import pytest

from alerts.core.config import DEFAULT_SECRET_KEY, ConfigError, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def test_built_in_defaults_are_sqlite_and_a_maildir_outbox(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.database.url == "sqlite:///alerts.db"
    assert settings.mail.transport == "maildir"
    assert settings.mail.maildir == "outbox"


def test_the_example_config_documents_every_key_with_its_default() -> None:
    from_example = load_settings(EXAMPLE, environ={})
    defaults = load_settings(environ={})
    assert from_example.database == defaults.database
    assert from_example.mail == defaults.mail
    assert from_example.web == defaults.web
    assert from_example.scheduler == defaults.scheduler
    assert from_example.sources == defaults.sources
    assert from_example.inbound == defaults.inbound
    assert from_example.force == defaults.force
    assert from_example.dkim == defaults.dkim
    assert from_example.webhooks == defaults.webhooks


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text('[mail]\nconcurrency = 5\nsmtp_port = 2525\n')
    settings = load_settings(config, environ={
        "ALERTS_MAIL_CONCURRENCY": "7",
        "ALERTS_DATABASE_URL": "sqlite:///elsewhere.db",
        "ALERTS_MAIL_SMTP_STARTTLS": "true",
        "ALERTS_SCHEDULER_DIGEST_CRON": "0 9 * * mon",
    })
    assert settings.mail.concurrency == 7
    assert settings.mail.smtp_port == 2525
    assert settings.mail.smtp_starttls is True
    assert settings.database.url == "sqlite:///elsewhere.db"
    assert settings.scheduler.digest_cron == "0 9 * * mon"


def test_alerts_config_variable_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text('[web]\nport = 9001\n')
    assert load_settings(environ={"ALERTS_CONFIG": str(config)}).web.port == 9001


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[mail]\nconcurency = 3\n", "unknown key mail.concurency"),
        ("[mial]\n", "unknown section [mial]"),
        ("[mail]\nconcurrency = 'lots'\n", "mail.concurrency"),
        ("[mail]\ntransport = 'pigeon'\n", "mail.transport"),
        ("[mail]\nsmtp_security = 'ssl'\n", "mail.smtp_security"),
        ("[mail\n", "not valid TOML"),
    ],
)
def test_a_bad_config_is_refused_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
        load_settings(config, environ={})


def test_the_default_secret_key_is_refused_outside_the_demo(tmp_path: Path) -> None:
    settings = load_settings(environ={"ALERTS_CONFIG": str(EXAMPLE)})
    assert settings.web.secret_key == DEFAULT_SECRET_KEY
    with pytest.raises(ConfigError, match=r"web\.secret_key"):
        settings.require_secret_key()
    demo = tmp_path / "demo.toml"
    demo.write_text("demo = true\n")
    load_settings(demo, environ={}).require_secret_key()
    load_settings(environ={"ALERTS_WEB_SECRET_KEY": "a-real-secret"}).require_secret_key()


def test_topics_are_kept_as_stored_and_a_repeat_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text('[topics]\nnames = ["Vehicle  Crime", " Scams "]\n')
    assert load_settings(config, environ={}).topics.names == ("vehicle crime", "scams")
    from_env = load_settings(None, environ={"ALERTS_TOPICS_NAMES": "rural, Burglary"})
    assert from_env.topics.names == ("rural", "burglary")
    config.write_text('[topics]\nnames = ["Scams", "scams"]\n')
    with pytest.raises(ConfigError, match="same topic twice"):
        load_settings(config, environ={})
