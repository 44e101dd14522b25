#!/usr/bin/env bash
# The Kubernetes manifests, offline: validated against the Kubernetes API
# schemas that kubernetes-validate ships (--strict: no field it does not
# know), then checked against the binary: every flag and environment
# variable they pass exists in `authgate serve --help` (deploy/kubernetes)
# or `authgate proxy --help` (deploy/kubernetes/sidecar; `serve --help` for
# the shared settings while the binary has no `proxy`), the image is what
# deploy/container/build.sh tags, the probes and ports match what it
# serves, and the drain fits the grace period. Installs kubernetes-validate
# from PyPI into target/kube-venv; .ci/run calls it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
venv=target/kube-venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/kubernetes/requirements.txt
fi
k8s_version=${KUBERNETES_VERSION:-1.30.0}
"$venv/bin/kubernetes-validate" --strict --quiet -k "$k8s_version" deploy/kubernetes/*.yaml deploy/kubernetes/sidecar/*.yaml
echo "deploy/kubernetes/*.yaml, deploy/kubernetes/sidecar/*.yaml: valid for Kubernetes $k8s_version (strict)"

# The image deploy/container/build.sh tags by default: AUTHGATE_IMAGE's
# default, then the crate's version.
repository=$(sed -n 's/.*AUTHGATE_IMAGE:-\([^}]*\)}.*/\1/p' deploy/container/build.sh | head -1)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
image="$repository:$version"

target_dir=${CARGO_TARGET_DIR:-target}
cargo build --quiet --bin authgate
authgate=$target_dir/debug/authgate
"$authgate" serve --help >target/serve-help.txt
proxy_help=()
if "$authgate" proxy --help >target/proxy-help.txt 2>/dev/null; then
  proxy_help=(--proxy-help target/proxy-help.txt)
fi
"$venv/bin/python" tests/kubernetes/check.py --serve-help target/serve-help.txt --image "$image" \
  deploy/kubernetes/*.yaml
"$venv/bin/python" tests/kubernetes/check.py --serve-help target/serve-help.txt "${proxy_help[@]}" \
  --image "$image" --sidecar deploy/kubernetes/sidecar/*.yaml

# The configuration files the Deployments mount load and check offline.
config_of() { # manifest, ConfigMap name
  "$venv/bin/python" - "$1" "$2" <<'PY'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["metadata"]["name"] == sys.argv[2]:
        print(doc["data"]["authgate.toml"], end="")
PY
}
clean_env=(env -u AUTHGATE_ISSUER -u AUTHGATE_AUDIENCE -u AUTH0_DOMAIN -u AUTH0_AUDIENCE -u AUTHGATE_UPSTREAM)
config_of deploy/kubernetes/configmap.yaml authgate-config >target/kube-authgate.toml
"${clean_env[@]}" "$authgate" serve --config target/kube-authgate.toml --check >/dev/null
echo "deploy/kubernetes/configmap.yaml: authgate.toml passes authgate serve --check"
config_of deploy/kubernetes/sidecar/configmap.yaml echo-authgate-config >target/kube-sidecar-authgate.toml
if [ ${#proxy_help[@]} -gt 0 ]; then
  # The proxy needs its upstream; the ConfigMap's environment gives it.
  "${clean_env[@]}" AUTHGATE_UPSTREAM=http://127.0.0.1:50052 \
    "$authgate" proxy --config target/kube-sidecar-authgate.toml --check >/dev/null
  echo "deploy/kubernetes/sidecar/configmap.yaml: authgate.toml passes authgate proxy --check"
else
  # serve refuses scope rules for methods it does not have (the upstream's
  # echo.v1.Echo): check the rest of the file with them left out.
  sed '/^require-scope = \[/,/^\]/d' target/kube-sidecar-authgate.toml >target/kube-sidecar-serve.toml
  "${clean_env[@]}" "$authgate" serve --config target/kube-sidecar-serve.toml --check >/dev/null
  echo "deploy/kubernetes/sidecar/configmap.yaml: authgate.toml, less its rules for the upstream, passes authgate serve --check (no proxy subcommand yet)"
fi
