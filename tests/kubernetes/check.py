"""Checks deploy/kubernetes against the binary and against itself.

usage: check.py SERVE_HELP MANIFEST...

- every `--flag` the Deployment passes, and every AUTHGATE_* variable its
  ConfigMap sets, is one `authgate serve --help` lists;
- the container ports are the ones --listen and --metrics-listen name, and
  the probes ask gRPC health on the gRPC port: readiness for "" (keys
  loaded, not draining), liveness for grpc.health.v1.Health;
- the readiness probe fails within the drain delay, and the grace period
  holds the drain delay and the shutdown timeout.
"""

import re
import sys

import yaml


def seconds(text):
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    assert match, f"not a duration: {text}"
    n, unit = int(match[1]), match[2]
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def main():
    help_text = open(sys.argv[1]).read()
    flags = set(re.findall(r"--[a-z][a-z0-9-]*", help_text))
    envs = set(re.findall(r"env: (AUTHGATE_[A-Z_]+)=", help_text))
    docs = [d for path in sys.argv[2:] for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    problems = []

    deployment = by_kind["Deployment"][0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert args[0] == "serve", args
    passed = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            name, _, value = arg.partition("=")
            passed[name] = value or args[i + 1]
            if name not in flags:
                problems.append(f"{name} is not a flag of authgate serve")

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
        if name.startswith("AUTHGATE_") and name not in envs:
            problems.append(f"{name} is not an environment variable of authgate serve")

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
    for name, probe, service in [("readiness", readiness, ""), ("liveness", liveness, "grpc.health.v1.Health")]:
        grpc = probe.get("grpc")
        if grpc is None or grpc.get("port") != grpc_port:
            problems.append(f"the {name} probe is not gRPC health on port {grpc_port}")
        elif grpc.get("service", "") != service:
            problems.append(f"the {name} probe asks for {grpc.get('service')!r}, not {service!r}")

    drain = seconds(passed.get("--drain-delay", "0s"))
    timeout = seconds(passed.get("--shutdown-timeout", "30s"))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    noticed = readiness.get("periodSeconds", 10) * readiness.get("failureThreshold", 3)
    if noticed >= drain:
        problems.append(f"readiness fails after up to {noticed}s, not within the {drain}s drain delay")
    if grace < pre_stop + drain + timeout:
        problems.append(f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain {drain} + shutdown timeout {timeout}")

    security = container.get("securityContext", {})
    if not security.get("readOnlyRootFilesystem") or security.get("allowPrivilegeEscalation", True):
        problems.append("the container must have a read-only root and no privilege escalation")
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append("the pod must run as non-root")
    for kind in ["Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"]:
        if kind not in by_kind:
            problems.append(f"no {kind}")

    if problems:
        for p in problems:
            print(f"FAIL: {p}")
        sys.exit(1)
    print(
        f"deploy/kubernetes agrees with authgate serve --help: flags {sorted(passed)}, "
        f"{len([s for s in settings if s.startswith('AUTHGATE_')])} environment variables; "
        f"drain {drain:g}s + shutdown timeout {timeout:g}s within a grace period of {grace}s; "
        f"readiness notices within {noticed}s"
    )


main()
