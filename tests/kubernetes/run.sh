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
