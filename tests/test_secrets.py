"""The secrets interface: env/files (default) and Vault KV v2 through hvac."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cluster.secrets import EnvFileSecrets, SecretNotFound, VaultSecrets, secret_store
from cluster.settings import load_settings


def test_env_then_file(tmp_path):
    (tmp_path / "providers" / "lambda").mkdir(parents=True)
    (tmp_path / "providers" / "lambda" / "apikey").write_text("from-file\n")
    store = EnvFileSecrets(tmp_path, environ={"GPUBROKER_SECRET_PROVIDERS_RUNPOD_APIKEY": "from-env"})
    assert store.get("providers/runpod", "apikey") == "from-env"
    assert store.get("providers/lambda", "apikey") == "from-file"
    assert store.get("providers/nope", "apikey") is None
    assert store.get("../../etc", "passwd") is None  # no escaping the secrets directory
    with pytest.raises(SecretNotFound, match="providers/nope#apikey"):
        store.require("providers/nope", "apikey")


class _KV2(BaseHTTPRequestHandler):
    """Answers Vault's KV v2 read endpoint (GET /v1/<mount>/data/<path>) the way Vault does."""

    data = {"providers/lambda": {"apikey": "vault-key"}}
    seen_tokens: list[str] = []

    def do_GET(self):  # noqa: N802
        self.seen_tokens.append(self.headers.get("X-Vault-Token", ""))
        prefix = "/v1/secret/data/"
        path = self.path.split("?", 1)[0]
        if path.startswith(prefix) and path[len(prefix):] in self.data:
            body = {"data": {"data": self.data[path[len(prefix):]],
                             "metadata": {"version": 1, "deletion_time": "", "destroyed": False}}}
            code = 200
        else:
            body, code = {"errors": []}, 404
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *a):
        pass


def test_vault_kv2_through_hvac():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _KV2)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        addr = f"http://127.0.0.1:{srv.server_address[1]}"
        settings = load_settings({"VAULT_ADDR": addr, "VAULT_TOKEN": "s.test"})
        store = secret_store(settings)
        assert isinstance(store, VaultSecrets)
        assert store.get("providers/lambda", "apikey") == "vault-key"
        assert store.get("providers/lambda", "other") is None
        assert store.get("providers/missing", "apikey") is None
        assert "s.test" in _KV2.seen_tokens
    finally:
        srv.shutdown()


def test_default_store_is_env_files():
    assert isinstance(secret_store(load_settings({})), EnvFileSecrets)
