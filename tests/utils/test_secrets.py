"""Database URLs are shown with the password masked; drivers' messages and log records are scrubbed."""

import logging

import pytest

from jetlab.errors import JetlabError
from jetlab.utils.secrets import keep_secret, mask_url, scrub, url_secrets


@pytest.mark.parametrize("url, shown", [
    ("sqlite:///hpo/dnn/study.db", "sqlite:///hpo/dnn/study.db"),
    ("sqlite:////abs/path/with:colon@sign.db", "sqlite:////abs/path/with:colon@sign.db"),
    ("postgresql://user@host:5432/db", "postgresql://user@host:5432/db"),
    ("postgresql://user:s3cr3t@host:5432/db", "postgresql://user:***@host:5432/db"),
    ("postgresql+psycopg://user:s3cr3t@host/db", "postgresql+psycopg://user:***@host/db"),
    ("postgres://user:p%40ss%3Aw0rd@10.0.0.1/db", "postgres://user:***@10.0.0.1/db"),
    ("postgresql://user:s3cr3t@[::1]:5432/db?sslmode=require", "postgresql://user:***@[::1]:5432/db?sslmode=require"),
    ("postgresql://user@host/db?sslmode=require&password=s3cr3t", "postgresql://user@host/db?sslmode=require&password=***"),
    ("postgresql://user:s3cr3t@host:notaport/db", "postgresql://user:***@host:notaport/db"),
])
def test_the_password_of_a_url_is_masked_and_nothing_else(url, shown):
    assert mask_url(url) == shown
    assert all(secret not in mask_url(url) for secret in url_secrets(url))


def test_a_percent_encoded_password_is_scrubbed_in_both_spellings():
    url = "postgresql://user:p%40ss%3Aw0rd@host/db"
    assert set(url_secrets(url)) >= {"p%40ss%3Aw0rd", "p@ss:w0rd"}
    text = f"cannot connect to {url} (password 'p@ss:w0rd' rejected)"
    assert scrub(text, url) == "cannot connect to postgresql://user:***@host/db (password '***' rejected)"


def test_errors_and_log_records_in_the_block_lose_the_password(caplog):
    url = "postgresql://user:s3cr3t@host/db"
    with pytest.raises(JetlabError) as raised, keep_secret(url):
        logging.getLogger("jetlab.test").warning("connecting to %s", url.replace("postgresql", "postgresql+psycopg"))
        raise ValueError(f"could not parse {url}")
    assert str(raised.value) == "ValueError: could not parse postgresql://user:***@host/db"
    with pytest.raises(JetlabError, match=r"^--storage postgresql://user:\*\*\*@host/db: refused$"), keep_secret(url):
        raise JetlabError(f"--storage {url}: refused")
    with pytest.raises(KeyError), keep_secret(url):  # other errors go through as they are
        raise KeyError("x")
    assert "s3cr3t" not in caplog.text and "postgresql+psycopg://user:***@host/db" in caplog.text
