#!/usr/bin/env bash
# The Kubernetes manifests, offline: validated against the Kubernetes API
# schemas that kubernetes-validate ships (--strict: no field it does not
# know), then checked against the binary: every flag and environment
# variable they pass exists in `authgate serve --help`, the probes and ports
# match what it serves, and the drain fits the grace period. Installs
# kubernetes-validate from PyPI into target/kube-venv; .ci/run calls it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
venv=target/kube-venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/kubernetes/requirements.txt
fi
k8s_version=${KUBERNETES_VERSION:-1.30.0}
"$venv/bin/kubernetes-validate" --strict --quiet -k "$k8s_version" deploy/kubernetes/*.yaml
echo "deploy/kubernetes/*.yaml: valid for Kubernetes $k8s_version (strict)"

cargo build --quiet --bin authgate
target/debug/authgate serve --help >target/serve-help.txt
"$venv/bin/python" tests/kubernetes/check.py target/serve-help.txt deploy/kubernetes/*.yaml

# The configuration file the Deployment mounts loads and checks offline.
"$venv/bin/python" - <<'PY' >target/kube-authgate.toml
import yaml
for doc in yaml.safe_load_all(open("deploy/kubernetes/configmap.yaml")):
    if doc and doc["metadata"]["name"] == "authgate-config":
        print(doc["data"]["authgate.toml"], end="")
PY
env -u AUTHGATE_ISSUER -u AUTHGATE_AUDIENCE -u AUTH0_DOMAIN -u AUTH0_AUDIENCE \
  target/debug/authgate serve --config target/kube-authgate.toml --check >/dev/null
echo "deploy/kubernetes/configmap.yaml: authgate.toml passes authgate serve --check"
