"""Cluster wiring: settings, secrets, storage clients, migrations, Ray/Serve bootstrap and the `gpubroker` command."""
