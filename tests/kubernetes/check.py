"""Checks a Deployment of authgate against the binary and against itself.

usage: check.py --serve-help FILE [--proxy-help FILE] --image IMAGE [--sidecar] MANIFEST...

For deploy/kubernetes (authgate serve) and, with --sidecar, for
deploy/kubernetes/sidecar (an app behind `authgate proxy` in the same pod):

- the authgate container runs the image deploy/container/build.sh tags;
- every `--flag` it passes, and every AUTHGATE_* variable its ConfigMap sets,
  is one the subcommand's --help lists: `authgate proxy --help` when the
  binary has that subcommand; until then `authgate serve --help` for the
  settings the two share, and the proxy's own (the contract's `--upstream`,
  `--public`, ...) are reported as not checked;
- the container ports are the ones --listen and --metrics-listen name; the
  readiness probe asks gRPC health for "" on the gRPC port; liveness asks
  grpc.health.v1.Health there (serve) or is a TCP or gRPC probe on it (proxy,
  which forwards health to the app);
- readiness fails on three failures or more, never on one slow probe, and
  notices within the drain delay; the grace period holds the drain delay and
  the shutdown timeout;
- the Service clients use does not expose the metrics port, and some Service
  does;
- sidecar: the upstream is on loopback, and only the authgate container
  declares ports (the app is reached only through the gate); the app's
  preStop outlasts the proxy's drain delay.
"""

import argparse
import ipaddress
import re
import sys
from urllib.parse import urlsplit

import yaml

# `authgate proxy`'s own settings (shared/CONTRACT.md): checked against
# `authgate proxy --help` once the binary has it.
PROXY_ONLY_FLAGS = {"--upstream", "--upstream-protocol", "--upstream-ca", "--public", "--forward-authorization"}
PROXY_ONLY_ENVS = {"AUTHGATE_UPSTREAM", "AUTHGATE_PUBLIC"}


def seconds(text):
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    assert match, f"not a duration: {text}"
    n, unit = int(match[1]), match[2]
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def read_help(path):
    text = open(path).read() if path else ""
    return set(re.findall(r"--[a-z][a-z0-9-]*", text)), set(re.findall(r"env: (AUTHGATE_[A-Z_]+)=", text))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-help", required=True)
    parser.add_argument("--proxy-help")
    parser.add_argument("--image", required=True)
    parser.add_argument("--sidecar", action="store_true")
    parser.add_argument("manifests", nargs="+")
    opts = parser.parse_args()

    subcommand = "proxy" if opts.sidecar else "serve"
    unchecked = set()
    if opts.sidecar and opts.proxy_help:
        flags, envs = read_help(opts.proxy_help)
        against = "authgate proxy --help"
    else:
        flags, envs = read_help(opts.serve_help)
        against = "authgate serve --help"
        if opts.sidecar:
            against += " (no proxy subcommand yet: its shared settings)"
    docs = [d for path in opts.manifests for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    problems = []

    deployment = by_kind["Deployment"][0]
    pod = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    container = containers["authgate"]
    if container["image"] != opts.image:
        problems.append(f"image {container['image']} is not {opts.image}, what deploy/container/build.sh tags")
    args = container["args"]
    if args[0] != subcommand:
        problems.append(f"the authgate container runs {args[0]!r}, not {subcommand!r}")
    passed = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            name, _, value = arg.partition("=")
            passed[name] = value or args[i + 1]
            if name in flags:
                continue
            if opts.sidecar and not opts.proxy_help and name in PROXY_ONLY_FLAGS:
                unchecked.add(name)
            else:
                problems.append(f"{name} is not a flag of {against}")

    config_maps = {c["metadata"]["name"]: c for c in by_kind["ConfigMap"]}
    settings = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        if name not in config_maps:
            problems.append(f"envFrom names ConfigMap {name}, which is not in the manifests")
            continue
        settings.update(config_maps[name]["data"])
    for env in container.get("env", []):
        settings[env["name"]] = env.get("value", "")
    for name in settings:
        if not name.startswith("AUTHGATE_") or name in envs:
            continue
        if opts.sidecar and not opts.proxy_help and name in PROXY_ONLY_ENVS:
            unchecked.add(name)
        else:
            problems.append(f"{name} is not an environment variable of {against}")

    def port_of(setting, flag):
        value = passed.get(flag) or settings.get(setting)
        if value is None:
            problems.append(f"neither {flag} nor {setting} is set")
            return None
        return int(value.rsplit(":", 1)[1])

    grpc_port = port_of("AUTHGATE_LISTEN", "--listen")
    metrics_port = port_of("AUTHGATE_METRICS_LISTEN", "--metrics-listen")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    if ports.get("grpc") != grpc_port:
        problems.append(f"containerPort grpc {ports.get('grpc')} is not --listen's {grpc_port}")
    if ports.get("metrics") != metrics_port:
        problems.append(f"containerPort metrics {ports.get('metrics')} is not --metrics-listen's {metrics_port}")
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/port") != str(metrics_port):
        problems.append("the prometheus.io/port annotation is not the metrics port")

    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    grpc = readiness.get("grpc")
    if grpc is None or grpc.get("port") != grpc_port:
        problems.append(f"the readiness probe is not gRPC health on port {grpc_port}")
    elif grpc.get("service", "") != "":
        problems.append(f"the readiness probe asks for {grpc.get('service')!r}, not ''")
    if opts.sidecar:
        # The proxy forwards health to the app: liveness only asks whether
        # the proxy itself accepts.
        probe_port = (liveness.get("tcpSocket") or liveness.get("grpc") or {}).get("port")
        if probe_port not in (grpc_port, "grpc"):
            problems.append(f"the liveness probe is not a TCP or gRPC probe of port {grpc_port}")
    else:
        grpc = liveness.get("grpc")
        if grpc is None or grpc.get("port") != grpc_port:
            problems.append(f"the liveness probe is not gRPC health on port {grpc_port}")
        elif grpc.get("service", "") != "grpc.health.v1.Health":
            problems.append(f"the liveness probe asks for {grpc.get('service')!r}, not 'grpc.health.v1.Health'")

    threshold = readiness.get("failureThreshold", 3)
    if threshold < 3:
        problems.append(f"readiness failureThreshold {threshold}: one or two slow probes (CPU throttling) take the pod out")
    drain = seconds(passed.get("--drain-delay", "0s"))
    timeout = seconds(passed.get("--shutdown-timeout", "30s"))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    noticed = readiness.get("periodSeconds", 10) * threshold
    if noticed >= drain:
        problems.append(f"readiness fails after up to {noticed}s, not within the {drain}s drain delay")
    if grace < pre_stop + drain + timeout:
        problems.append(f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain {drain} + shutdown timeout {timeout}")

    security = container.get("securityContext", {})
    if not security.get("readOnlyRootFilesystem") or security.get("allowPrivilegeEscalation", True):
        problems.append("the container must have a read-only root and no privilege escalation")
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append("the pod must run as non-root")
    wanted = ["Service"] if opts.sidecar else ["Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"]
    for kind in wanted:
        if kind not in by_kind:
            problems.append(f"no {kind}")

    # Metrics apart from what clients call.
    metrics_names = {"metrics", metrics_port}
    exposes_metrics = False
    for service in by_kind.get("Service", []):
        targets = {p.get("targetPort") for p in service["spec"]["ports"]}
        name = service["metadata"]["name"]
        for target in targets:
            if target not in ports and target not in ports.values():
                problems.append(f"Service {name} targets port {target}, which the authgate container does not declare")
        if targets & metrics_names:
            exposes_metrics = True
            if targets - metrics_names:
                problems.append(f"Service {name} exposes the metrics port beside {sorted(map(str, targets - metrics_names))}")
    if not exposes_metrics:
        problems.append("no Service exposes the metrics port")

    extra = ""
    if opts.sidecar:
        upstream = passed.get("--upstream") or settings.get("AUTHGATE_UPSTREAM")
        host = urlsplit(upstream or "").hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except (TypeError, ValueError):
            loopback = False
        if not loopback:
            problems.append(f"the upstream {upstream} is not the app on loopback")
        for name, other in containers.items():
            if name != "authgate" and other.get("ports"):
                problems.append(f"container {name} declares ports: the app is to be reached only through the proxy")
            if name != "authgate":
                sleep = other.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
                if sleep < drain:
                    problems.append(f"container {name}'s preStop sleep ({sleep}s) ends before the proxy's {drain}s drain delay")
        extra = f"; upstream {upstream}"
        if unchecked:
            extra += f"; not checked until the binary has `proxy`: {sorted(unchecked)}"

    if problems:
        for p in problems:
            print(f"FAIL: {p}")
        sys.exit(1)
    where = "deploy/kubernetes/sidecar" if opts.sidecar else "deploy/kubernetes"
    print(
        f"{where} agrees with {against}: flags {sorted(passed)}, "
        f"{len([s for s in settings if s.startswith('AUTHGATE_')])} environment variables; "
        f"image {opts.image}; "
        f"drain {drain:g}s + shutdown timeout {timeout:g}s within a grace period of {grace}s; "
        f"readiness notices within {noticed}s ({threshold} failures){extra}"
    )


main()
