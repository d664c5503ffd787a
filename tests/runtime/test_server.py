"""The local Prefect server: its home and what its clients load."""

from __future__ import annotations

import ssl
from pathlib import Path

from runtime.server import local_api_environment


def test_clients_of_a_local_http_server_load_one_certificate(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_SSL_CERT_FILE", raising=False)
    env = local_api_environment("http://127.0.0.1:4200/api", tmp_path)
    pem = Path(env["PREFECT_API_SSL_CERT_FILE"]).read_text()
    assert pem.count("BEGIN CERTIFICATE") == 1
    ssl.create_default_context(cafile=env["PREFECT_API_SSL_CERT_FILE"])  # a file ssl accepts
    assert "PREFECT_API_SSL_CERT_FILE" not in local_api_environment("https://prefect.example/api", tmp_path)
    monkeypatch.setenv("PREFECT_API_SSL_CERT_FILE", "/etc/ssl/mine.pem")  # the user's own wins
    assert "PREFECT_API_SSL_CERT_FILE" not in local_api_environment("http://127.0.0.1:4200/api", tmp_path)


def test_local_server_defaults_to_a_project_local_prefect_home(tmp_path, monkeypatch):
    from runtime.server import LocalPrefectServer

    monkeypatch.delenv("PREFECT_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    server = LocalPrefectServer()  # not started: only where it would keep its database
    assert server.env["PREFECT_HOME"] == str(tmp_path / ".prefect")
    assert server.log_path.parent == tmp_path / ".prefect"
