# Sourced by the Ray start commands of every cluster node (cluster/deploy/ray-cluster-*.yaml):
# log in to Vault and export the settings and tokens this node's Ray processes inherit.
# Nothing here is a secret; what it exports stays in the environment of this node's Ray processes.
#   VAULT_ADDR        your Vault's private address (set in /etc/gpubroker/vault_addr by the node image
#                     or the setup commands)
#   login             instance role (AWS IAM auth, role gpubroker-node) on AWS; on premise, the token in
#                     /etc/gpubroker/vault_token (placed by your configuration management, mode 0400)
#   read              secret/gpubroker/settings: database_url, redis_url, nats_url
#                     secret/gpubroker/ray: auth_token (Ray's token authentication)
set -eu
export VAULT_ADDR="${VAULT_ADDR:-$(cat /etc/gpubroker/vault_addr)}"
if [ -r /etc/gpubroker/vault_token ]; then
    VAULT_TOKEN="$(cat /etc/gpubroker/vault_token)"
else
    VAULT_TOKEN="$(vault login -method=aws -token-only role=gpubroker-node)"
fi
export VAULT_TOKEN
_kv() { vault kv get -field="$2" "secret/gpubroker/$1"; }
export GPUBROKER_VAULT_ADDR="$VAULT_ADDR" GPUBROKER_VAULT_TOKEN="$VAULT_TOKEN"
export GPUBROKER_DATABASE_URL="$(_kv settings database_url)"
export GPUBROKER_REDIS_URL="$(_kv settings redis_url)"
export GPUBROKER_NATS_URL="$(_kv settings nats_url)"
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN="$(_kv ray auth_token)"
export RAY_USAGE_STATS_ENABLED=0 RAY_SERVE_ENABLE_HA_PROXY=1 RAY_SERVE_THROUGHPUT_OPTIMIZED=1
# Serve's HAProxy: stats and metrics on loopback ports of each node (scraped through the node exporter
# of Ray's metrics, never exposed).
export RAY_SERVE_HAPROXY_STATS_PORT=8404 RAY_SERVE_HAPROXY_METRICS_PORT=9101
# One state dir at the same absolute path on every node: the head hands its metrics folder's path to every
# process, and each node's exporter (cluster.node_metrics, port 9108) reads that folder.
export GPUBROKER_STATE_DIR="$HOME/gpubroker-state"
# This node's private address: the dashboard and the metrics export listen there only.
export GPUBROKER_NODE_IP="$(hostname -I | awk '{print $1}')"
# Serve's HTTP proxy and the WebSocket gateway listen on the private address; the gateway is pinned to
# the node with the `gpubroker_head` resource (the head), so its port is the head's.
export GPUBROKER_HTTP_HOST="$GPUBROKER_NODE_IP" GPUBROKER_WS_HOST="$GPUBROKER_NODE_IP" GPUBROKER_WS_NODE_RESOURCE=gpubroker_head
set +eu
