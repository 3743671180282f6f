"""The README documents every setting and both set-up commands."""
from pathlib import Path

from cluster.settings import Settings, env_name

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented():
    missing = []
    for name in Settings.model_fields:
        var = env_name(name)
        stem = var.rsplit("_", 1)[0]
        # "`GPUBROKER_X_MIN` / `_MAX`" documents GPUBROKER_X_MAX too
        paired = f"`{stem}_" in README and f"/ `_{var.rsplit('_', 1)[1]}`" in README
        if var not in README and not paired:
            missing.append(var)
    assert missing == []


def test_two_setup_commands():
    assert "make up" in README and "make test" in README
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert ci.rstrip().endswith("make test")
