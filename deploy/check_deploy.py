#!/usr/bin/env python3
"""Checks what schema validators cannot: that deploy/ wires dondoc together as designed.

    check_deploy.py compose CONFIG_JSON ENV_FILE     # `docker compose config --format json`
    check_deploy.py k8s OVERLAY RENDERED_YAML        # `kubectl kustomize` output
    check_deploy.py otel OTEL_CONFIG_YAML
    check_deploy.py holidays FILE...
    check_deploy.py keygen KEYGEN_OUTPUT             # the `dondoc keygen` format

Prints one line per check group and exits 1 on the first group with a failure.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import sys

import yaml

COMPONENTS = {"gateway": 7700, "directives": 7701, "assignments": 7702, "notifications": 7703}
SERVICES = ["directives", "assignments", "notifications"]
KEYGEN_KEYS = [
    "DONDOC_GATEWAY_ASSERTION_KEY",
    "DONDOC_DIRECTIVES_ASSERTION_KEY",
    "DONDOC_ASSIGNMENTS_ASSERTION_KEY",
    "DONDOC_NOTIFICATIONS_ASSERTION_KEY",
    "DONDOC_TRUSTED_KEYS",
    "DONDOC_JWT_HS256_SECRET",
    "DONDOC_DIRECTIVES_DB_PASSWORD",
    "DONDOC_ASSIGNMENTS_DB_PASSWORD",
    "DONDOC_NOTIFICATIONS_DB_PASSWORD",
]
# Who calls whom (component -> {component}); everything else must be refused.
CALLS = {
    "gateway": {"directives", "assignments", "notifications"},
    "assignments": {"directives"},
    "notifications": {"assignments", "directives"},
    "directives": set(),
    "migrate": set(),
}
USES_POSTGRES = {"directives", "assignments", "notifications", "migrate"}
PRESTOP_SLEEP_MAX = 10

failures: list[str] = []


def check(cond: bool, what: str) -> None:
    if not cond:
        failures.append(what)


def finish(group: str, count: int) -> None:
    if failures:
        for f in failures:
            print(f"  FAIL {group}: {f}")
        sys.exit(1)
    print(f"  ok   {group}: {count} checks")


def seconds(text: str | int | float) -> float:
    if isinstance(text, (int, float)):
        return float(text) / 1e9 if text > 1e6 else float(text)  # compose JSON gives ns
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(text))
    if not m:
        raise ValueError(text)
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


def check_seed(value: str, what: str) -> None:
    try:
        raw = base64.b64decode(value, validate=True)
    except Exception:  # noqa: BLE001
        raw = b""
    check(len(raw) == 32, f"{what} is not 32 bytes in standard base64")


def check_trusted(value: str, what: str) -> None:
    names = []
    for entry in value.split(","):
        name, _, key = entry.partition(":")
        names.append(name)
        check_seed(key, f"{what}: public key of {name}")
    check(sorted(names) == ["assignments", "directives", "gateway", "notifications"],
          f"{what} names {names}: each of gateway, directives, assignments, notifications once")


# --- dondoc keygen -------------------------------------------------------------------------

def keygen(path: str) -> None:
    """KEY=VALUE lines (comment lines allowed, any order), each key of KEYGEN_KEYS once."""
    lines = [line for line in open(path, encoding="utf-8").read().splitlines()
             if line and not line.startswith("#")]
    pairs = [line.split("=", 1) for line in lines]
    check(all(len(p) == 2 for p in pairs), "every line is KEY=VALUE or a # comment")
    names = [p[0] for p in pairs]
    check(sorted(names) == sorted(KEYGEN_KEYS), f"keys {names}, expected {KEYGEN_KEYS}")
    values = dict(p for p in pairs if len(p) == 2)
    for key in KEYGEN_KEYS[:4]:
        check_seed(values.get(key, ""), key)
    check_trusted(values.get("DONDOC_TRUSTED_KEYS", ""), "DONDOC_TRUSTED_KEYS")
    for key in KEYGEN_KEYS[5:]:
        value = values.get(key, "")
        check(len(value) >= 24 and value.isalnum() and value.isascii(),
              f"{key}: at least 24 letters and digits (it goes inside a URL)")
    check(all('"' not in v and "'" not in v and " " not in v for v in values.values()), "no quotes or spaces")
    finish("dondoc keygen output format", 4 + len(KEYGEN_KEYS))


# --- Compose -----------------------------------------------------------------------------

def compose(config_path: str, env_path: str) -> None:
    cfg = json.load(open(config_path, encoding="utf-8"))
    services = cfg["services"]
    n = 0
    expected = {"postgres", "migrate", "otel-collector", *COMPONENTS}
    check(set(services) == expected, f"services are {sorted(services)}, expected {sorted(expected)}")

    pg = services["postgres"]
    check(str(pg.get("image", "")).startswith("postgres:16"), "postgres runs PostgreSQL 16")
    check("pg_isready" in pg.get("healthcheck", {}).get("test", []), "postgres healthcheck uses pg_isready")
    check(any(v.get("target") == "/var/lib/postgresql/data" for v in pg.get("volumes", [])),
          "postgres keeps its data in a volume")
    n += 3

    mig = services["migrate"]
    check(mig.get("command") == ["migrate"], "migrate runs `dondoc migrate`")
    check(mig.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
          "migrate waits for postgres to be healthy")
    check(mig.get("restart") in ("no", None), "migrate is one-shot")
    menv = mig.get("environment", {})
    for var in ["DATABASE_URL", "DONDOC_DIRECTIVES_DB_PASSWORD", "DONDOC_ASSIGNMENTS_DB_PASSWORD",
                "DONDOC_NOTIFICATIONS_DB_PASSWORD"]:
        check(bool(menv.get(var)), f"migrate has {var}")
    n += 7

    images = set()
    env_file = dict(
        line.split("=", 1) for line in open(env_path, encoding="utf-8").read().splitlines()
        if line and not line.startswith("#") and "=" in line
    )
    for name, port in COMPONENTS.items():
        svc = services[name]
        env = svc.get("environment", {})
        images.add(svc.get("image"))
        check(svc.get("command") == ["serve", name], f"{name} runs `dondoc serve {name}`")
        check(env.get("DONDOC_LISTEN") == f"0.0.0.0:{port}", f"{name} listens on 0.0.0.0:{port}")
        check(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == "http://otel-collector:4317",
              f"{name} exports spans to the collector")
        check(svc.get("healthcheck", {}).get("test") == ["CMD", "dondoc", "health", f"127.0.0.1:{port}"],
              f"{name} healthcheck is `dondoc health 127.0.0.1:{port}`")
        check(bool(env.get("DONDOC_ASSERTION_KEY")), f"{name} has DONDOC_ASSERTION_KEY")
        check(env.get("DONDOC_ASSERTION_KEY") == env_file.get(f"DONDOC_{name.upper()}_ASSERTION_KEY"),
              f"{name} gets DONDOC_{name.upper()}_ASSERTION_KEY from the env file")
        check(svc.get("read_only") is True, f"{name} has a read-only root filesystem")
        check("ALL" in svc.get("cap_drop", []), f"{name} drops all capabilities")
        grace = float(env.get("DONDOC_SHUTDOWN_GRACE_SECS", 20))
        check(seconds(svc.get("stop_grace_period", "10s")) > grace,
              f"{name}: stop_grace_period above the drain grace ({grace} s)")
        n += 9
        deps = svc.get("depends_on", {})
        if name in SERVICES:
            check(deps.get("migrate", {}).get("condition") == "service_completed_successfully",
                  f"{name} starts after migrate succeeded")
            check(env.get("DONDOC_TRUSTED_KEYS") == env_file.get("DONDOC_TRUSTED_KEYS"),
                  f"{name} trusts DONDOC_TRUSTED_KEYS")
            url = env.get("DONDOC_DATABASE_URL", "")
            check(url.startswith(f"postgres://dondoc_{name}:") and "@postgres:5432/dondoc" in url,
                  f"{name} connects as dondoc_{name}")
            password = env_file.get(f"DONDOC_{name.upper()}_DB_PASSWORD", "")
            check(password != "" and f":{password}@" in url, f"{name}'s URL carries its role password")
            for upstream in CALLS[name]:
                check(deps.get(upstream, {}).get("condition") == "service_healthy",
                      f"{name} starts after {upstream} is healthy")
                n += 1
            n += 4
        else:
            for s in SERVICES:
                check(deps.get(s, {}).get("condition") == "service_healthy",
                      f"gateway starts after {s} is healthy")
            check(any(str(p.get("published")) == "7700" and p.get("target") == 7700
                      for p in svc.get("ports", [])), "gateway is published on 7700")
            check(bool(env.get("DONDOC_JWT_HS256_SECRET")), "gateway has DONDOC_JWT_HS256_SECRET")
            check("DONDOC_DATABASE_URL" not in env, "gateway has no database")
            n += 6
    check(len(images) == 1, f"every component runs the same image ({images})")
    check(images == {mig.get("image")}, "migrate runs the same image")
    n += 2
    otel = services["otel-collector"]
    check("opentelemetry-collector-contrib" in otel.get("image", ""), "the collector is otelcol-contrib")
    n += 1
    finish("compose wiring", n)


# --- OpenTelemetry collector ---------------------------------------------------------------

def otel(path: str) -> None:
    cfg = yaml.safe_load(open(path, encoding="utf-8"))
    grpc = cfg["receivers"]["otlp"]["protocols"]["grpc"]
    check(grpc.get("endpoint", "").endswith(":4317"), "OTLP/gRPC on 4317")
    pipes = cfg["service"]["pipelines"]
    check("traces" in pipes, "a traces pipeline")
    n = 2
    for pname, pipe in pipes.items():
        for section in ("receivers", "processors", "exporters"):
            for item in pipe.get(section, []):
                check(item in (cfg.get(section) or {}), f"pipeline {pname}: {section[:-1]} {item} is defined")
                n += 1
    for ext in cfg["service"].get("extensions", []):
        check(ext in (cfg.get("extensions") or {}), f"extension {ext} is defined")
        n += 1
    check("debug" in pipes["traces"]["exporters"], "spans go to the debug exporter")
    finish("otel collector config", n + 1)


# --- holidays --------------------------------------------------------------------------------

def holidays(paths: list[str]) -> None:
    texts = [open(p, encoding="utf-8").read() for p in paths]
    check(all(t == texts[0] for t in texts), f"{paths} are identical")
    n = 1
    for line in texts[0].splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                datetime.date.fromisoformat(line)
            except ValueError:
                check(False, f"{line!r} is not YYYY-MM-DD")
            n += 1
    finish("holidays files", n)


# --- Kubernetes --------------------------------------------------------------------------------

def k8s(overlay: str, rendered: str) -> None:
    docs = [d for d in yaml.safe_load_all(open(rendered, encoding="utf-8")) if d]
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    n = 0

    prepare = {"Namespace", "ServiceAccount", "ConfigMap", "Secret", "NetworkPolicy", "Job"}
    for d in docs:
        phase = d["metadata"].get("labels", {}).get("dondoc/rollout")
        want = "prepare" if d["kind"] in prepare else "serve"
        check(phase == want, f"{d['kind']}/{d['metadata']['name']} has dondoc/rollout={want} (rollout.sh)")
        if d["kind"] != "Namespace":
            check(d["metadata"].get("namespace") == "dondoc", f"{d['kind']}/{d['metadata']['name']} in namespace dondoc")
            n += 1
        n += 1

    configmaps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    config = next((c["data"] for name, c in configmaps.items() if name.startswith("dondoc-config")), {})
    grace = int(config.get("DONDOC_SHUTDOWN_GRACE_SECS", "20"))
    secret_keys = {
        name: set(s.get("data", {})) | set(s.get("stringData", {})) for name, s in secrets.items()
    }
    check(any(k.startswith("dondoc-secrets") and set(KEYGEN_KEYS) <= v for k, v in secret_keys.items()),
          "the dondoc-secrets Secret holds everything `dondoc keygen` prints")
    check(any(k.startswith("dondoc-database") and v == {"DATABASE_URL"} for k, v in secret_keys.items()),
          "the dondoc-database Secret holds DATABASE_URL only")
    n += 2

    def pod_checks(name: str, pod: dict, port: int | None) -> None:
        nonlocal n
        spec = pod["spec"]
        psc = spec.get("securityContext", {})
        check(psc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot")
        check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp RuntimeDefault")
        check(spec.get("automountServiceAccountToken") is False, f"{name}: no service account token")
        (c,) = spec["containers"]
        sc = c.get("securityContext", {})
        check(sc.get("readOnlyRootFilesystem") is True, f"{name}: read-only root filesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"{name}: no privilege escalation")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: drops all capabilities")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                check(r in res.get(kind, {}), f"{name}: resources.{kind}.{r}")
        # Every secret and config reference resolves, every $(VAR) is defined before use.
        defined = set()
        for ef in c.get("envFrom", []):
            ref = ef.get("configMapRef", {}).get("name")
            check(ref in configmaps, f"{name}: ConfigMap {ref} exists")
            defined |= set(configmaps.get(ref, {}).get("data", {}))
        env = {}
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                check(ref["key"] in secret_keys.get(ref["name"], set()),
                      f"{name}: Secret {ref['name']} has key {ref['key']}")
            for var in re.findall(r"\$\((\w+)\)", e.get("value", "")):
                check(var in defined, f"{name}: $({var}) in {e['name']} is defined before it")
            defined.add(e["name"])
            env[e["name"]] = e
        n += 13
        if port is None:
            return
        check(env.get("DONDOC_LISTEN", {}).get("value") == f"0.0.0.0:{port}", f"{name}: listens on {port}")
        check([p["containerPort"] for p in c.get("ports", [])] == [port], f"{name}: container port {port}")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            check(c.get(probe, {}).get("grpc", {}).get("port") == port, f"{name}: {probe} is gRPC on {port}")
        sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        check(sleep <= PRESTOP_SLEEP_MAX, f"{name}: short preStop sleep")
        check(spec.get("terminationGracePeriodSeconds", 30) > grace + sleep,
              f"{name}: terminationGracePeriodSeconds above preStop + DONDOC_SHUTDOWN_GRACE_SECS")
        n += 7

    deployments = by_kind.get("Deployment", {})
    check(set(deployments) == set(COMPONENTS), f"Deployments {sorted(deployments)}")
    n += 1
    for name, port in COMPONENTS.items():
        dep = deployments.get(name)
        if not dep:
            continue
        labels = dep["spec"]["selector"]["matchLabels"]
        check(labels.get("app.kubernetes.io/component") == name, f"{name}: selector by component")
        check("replicas" not in dep["spec"], f"{name}: replicas left to the autoscaler")
        tmpl = dep["spec"]["template"]
        check(tmpl["spec"]["containers"][0]["args"] == ["serve", name], f"{name}: runs `dondoc serve {name}`")
        pod_checks(name, tmpl, port)
        env_names = {e["name"] for e in tmpl["spec"]["containers"][0].get("env", [])}
        if name in SERVICES:
            check({"DONDOC_ASSERTION_KEY", "DONDOC_TRUSTED_KEYS", "DONDOC_DATABASE_URL"} <= env_names,
                  f"{name}: assertion key, trusted keys and database URL")
        else:
            check({"DONDOC_ASSERTION_KEY", "DONDOC_JWT_HS256_SECRET"} <= env_names and
                  "DONDOC_DATABASE_URL" not in env_names, "gateway: key and JWT secret, no database")
        svc = by_kind.get("Service", {}).get(name)
        check(svc is not None and svc["spec"]["selector"] == labels and
              svc["spec"]["ports"][0]["port"] == port, f"{name}: Service on {port}")
        hpa = by_kind.get("HorizontalPodAutoscaler", {}).get(name)
        check(hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == name, f"{name}: autoscaler")
        pdb = by_kind.get("PodDisruptionBudget", {}).get(name)
        check(pdb is not None and pdb["spec"]["selector"]["matchLabels"] == labels, f"{name}: disruption budget")
        if pdb:
            check(pdb["spec"].get("maxUnavailable", 0) >= 1 or pdb["spec"].get("minAvailable") == 0,
                  f"{name}: the budget never blocks a node drain")
        spread = tmpl["spec"].get("topologySpreadConstraints", [])
        if hpa and overlay == "small-province":
            check(hpa["spec"]["minReplicas"] == 1, f"{name}: one replica in a small province")
        if hpa and overlay == "large-province":
            check(hpa["spec"]["minReplicas"] >= 3, f"{name}: at least three replicas")
            check(hpa["spec"]["maxReplicas"] == 10, f"{name}: autoscaled up to ten")
            check({c["topologyKey"] for c in spread} >= {"kubernetes.io/hostname", "topology.kubernetes.io/zone"},
                  f"{name}: spread over nodes and zones")
        n += 9

    public = [s for s in by_kind.get("Service", {}).values() if s["spec"].get("type") == "LoadBalancer"]
    check(len(public) == 1 and public[0]["spec"]["selector"].get("app.kubernetes.io/component") == "gateway",
          "only the gateway has a public Service")
    n += 1

    (job,) = by_kind.get("Job", {}).values()
    check(job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"], "the Job runs `dondoc migrate`")
    check("ttlSecondsAfterFinished" in job["spec"], "the Job is garbage-collected")
    check(job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure"), "the Job's restart policy")
    pod_checks("migrate", job["spec"]["template"], None)
    n += 3

    images = {c["image"] for d in docs if d["kind"] in ("Deployment", "Job")
              for c in d["spec"]["template"]["spec"]["containers"]}
    check(len(images) == 1 and all(":" in i.rsplit("/", 1)[-1] or "@sha256:" in i for i in images),
          f"every pod runs one pinned image ({sorted(images)})")
    n += 1

    # NetworkPolicy: who can reach whom, evaluated like a CNI would (pod selectors only).
    n += network(by_kind.get("NetworkPolicy", {}))
    finish(f"k8s {overlay} wiring", n)


def selects(selector: dict, labels: dict) -> bool:
    for k, v in selector.get("matchLabels", {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions", []):
        val = labels.get(e["key"])
        if e["operator"] == "In" and val not in e["values"]:
            return False
        if e["operator"] == "NotIn" and val in e["values"]:
            return False
        if e["operator"] == "Exists" and val is None:
            return False
    return True


def network(policies: dict) -> int:
    pods = {c: {"app.kubernetes.io/name": "dondoc", "app.kubernetes.io/component": c} for c in CALLS}
    ports = {**COMPONENTS}

    def applicable(labels: dict, ptype: str) -> list[dict]:
        return [p for p in policies.values()
                if ptype in p["spec"].get("policyTypes", []) and selects(p["spec"]["podSelector"], labels)]

    def port_ok(rule: dict, port: int) -> bool:
        rp = rule.get("ports")
        return not rp or any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in rp)

    def peer_ok(rule: dict, key: str, labels: dict | None, external: bool) -> bool:
        peers = rule.get(key)
        if not peers:
            return True
        for peer in peers:
            # An ipBlock may match pod addresses too on some CNIs: count it for both.
            if "ipBlock" in peer:
                return True
            if external:
                continue
            if "podSelector" in peer and "namespaceSelector" not in peer and selects(peer["podSelector"], labels):
                return True
            if "namespaceSelector" in peer and peer["namespaceSelector"] == {}:
                return True
        return False

    def allowed(src: str | None, dst: str | None, port: int) -> bool:
        src_labels = pods.get(src) if src else None
        dst_labels = pods.get(dst) if dst else None
        if src_labels is not None:
            eg = applicable(src_labels, "Egress")
            if eg and not any(port_ok(r, port) and peer_ok(r, "to", dst_labels, dst is None)
                              for p in eg for r in p["spec"].get("egress", [])):
                return False
        if dst_labels is not None:
            ing = applicable(dst_labels, "Ingress")
            if ing and not any(port_ok(r, port) and peer_ok(r, "from", src_labels, src is None)
                               for p in ing for r in p["spec"].get("ingress", [])):
                return False
        return True

    n = 0
    for src in CALLS:
        for dst, port in ports.items():
            want = dst in CALLS[src]
            check(allowed(src, dst, port) == want,
                  f"network: {src} -> {dst}:{port} should be {'allowed' if want else 'refused'}")
            n += 1
        check(allowed(src, None, 5432) == (src in USES_POSTGRES),
              f"network: {src} -> PostgreSQL:5432 should be {'allowed' if src in USES_POSTGRES else 'refused'}")
        check(allowed(src, None, 443) is False, f"network: {src} -> outside:443 refused")
        n += 2
    for dst, port in ports.items():
        want = dst == "gateway"
        check(allowed(None, dst, port) == want,
              f"network: outside -> {dst}:{port} should be {'allowed' if want else 'refused'}")
        n += 1
    return n


def main() -> None:
    cmd, *args = sys.argv[1:]
    if cmd == "compose":
        compose(*args)
    elif cmd == "k8s":
        k8s(*args)
    elif cmd == "otel":
        otel(*args)
    elif cmd == "holidays":
        holidays(args)
    elif cmd == "keygen":
        keygen(*args)
    else:
        sys.exit(f"unknown check {cmd}")


if __name__ == "__main__":
    main()
