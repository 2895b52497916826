#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check.py -- structural test of docker-compose.yml, Dockerfile and .dockerignore (`make test`).

No Docker engine runs where the tests run, so this reads the files instead of starting them:
the four services and what each needs (and the Redis Cluster variant's nodes, cluster creation and
seed list) (AOF, init scripts, ports, health checks, restart policies,
start order), the environment against .env.example and the configuration table in src/config.c,
and a multi-stage Dockerfile whose final stage runs as an unprivileged user. When the
`docker compose` plugin happens to be installed, `docker compose config` validates the file too.
Usage: tests/compose/check.py [ROOT]; exit 0 when everything holds, else 1 with every failure.
"""
import os
import re
import subprocess
import sys

try:
    import yaml
except ImportError:
    # Another python3 may come first in PATH (pyenv, a venv); Debian's has python3-yaml.
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("check.py: PyYAML is missing; run scripts/install-deps (package python3-yaml)")

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def env_example_keys():
    """Keys of .env.example: (all, those after the docker-compose-only marker)."""
    keys, compose_only, in_compose = set(), set(), False
    for line in read(".env.example").splitlines():
        if line.startswith("# ---- docker-compose only"):
            in_compose = True
        m = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        if m:
            keys.add(m.group(1))
            if in_compose:
                compose_only.add(m.group(1))
    return keys, compose_only


def config_keys():
    """Configuration keys per program, from the key table in src/config.c."""
    server, worker = set(), set()
    for m in re.finditer(r'\{"([A-Z][A-Z0-9_]*)", T_[A-Z0-9_]+, (GK_PROG_SERVER|GK_PROG_WORKER|BOTH),',
                         read("src/config.c")):
        if m.group(2) in ("GK_PROG_SERVER", "BOTH"):
            server.add(m.group(1))
        if m.group(2) in ("GK_PROG_WORKER", "BOTH"):
            worker.add(m.group(1))
    return server, worker


def as_dict(env):
    """A service's environment, whichever of the two compose spellings it uses."""
    if isinstance(env, list):
        return dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return dict(env or {})


def container_ports(svc):
    ports = set()
    for p in svc.get("ports", []):
        if isinstance(p, dict):
            ports.add(int(p["target"]))
        else:
            ports.add(int(str(p).rsplit(":", 1)[-1].split("/")[0]))
    return ports


def healthcheck_ok(name, svc):
    hc = svc.get("healthcheck") or {}
    test = hc.get("test")
    check(isinstance(test, list) and len(test) >= 2 and test[0] in ("CMD", "CMD-SHELL"),
          f"{name}: healthcheck.test must be a CMD or CMD-SHELL list")
    for k in ("interval", "timeout", "retries"):
        check(k in hc, f"{name}: healthcheck has no {k}")
    return " ".join(test or [])


def check_compose(env_keys, compose_only):
    text = read("docker-compose.yml")
    doc = yaml.safe_load(text)
    services = doc.get("services") or {}
    check(set(services) == {"redis", "postgres", "api", "worker"},
          f"services are {sorted(services)}, want api, postgres, redis, worker")
    for name, svc in services.items():
        check(svc.get("restart") in ("always", "unless-stopped", "on-failure"), f"{name}: no restart policy")
    redis, pg = services.get("redis", {}), services.get("postgres", {})
    api, worker = services.get("api", {}), services.get("worker", {})

    cmd = " ".join(redis.get("command") or []) if isinstance(redis.get("command"), list) else str(redis.get("command"))
    check("--appendonly yes" in cmd, "redis: AOF is not on (--appendonly yes)")
    check("--appendfsync everysec" in cmd, "redis: --appendfsync everysec missing")
    check(any(str(v).endswith(":/data") for v in redis.get("volumes", [])), "redis: /data is not on a volume")
    check("redis-cli" in healthcheck_ok("redis", redis), "redis: healthcheck does not ping")

    check(any(re.match(r"^\./sql:/docker-entrypoint-initdb\.d(:ro)?$", str(v)) for v in pg.get("volumes", [])),
          "postgres: ./sql is not mounted on /docker-entrypoint-initdb.d")
    check(any(str(v).endswith(":/var/lib/postgresql/data") for v in pg.get("volumes", [])),
          "postgres: data is not on a volume")
    pg_env = as_dict(pg.get("environment"))
    check("POSTGRES_PASSWORD" in pg_env, "postgres: no POSTGRES_PASSWORD")
    check("pg_isready" in healthcheck_ok("postgres", pg), "postgres: healthcheck does not use pg_isready")

    for name, svc in (("api", api), ("worker", worker)):
        build = svc.get("build")
        check(build == "." or (isinstance(build, dict) and build.get("context", ".") == "."),
              f"{name}: not built from ./Dockerfile")
        deps = svc.get("depends_on") or {}
        for dep in ("redis", "postgres"):
            check(isinstance(deps, dict) and (deps.get(dep) or {}).get("condition") == "service_healthy",
                  f"{name}: does not wait for {dep} to be healthy")
        env = as_dict(svc.get("environment"))
        for key in env:
            check(key in env_keys, f"{name}: passes {key}, which .env.example does not list")
            check(key not in compose_only, f"{name}: passes {key}, a docker-compose-only variable")
    check(api.get("image") == worker.get("image"), "api and worker do not share one image")

    server, worker_keys = config_keys()
    check(len(server) > 5 and len(worker_keys) > 2, "could not read the key table of src/config.c")
    api_env, worker_env = as_dict(api.get("environment")), as_dict(worker.get("environment"))
    # One Redis or a cluster: a service passes exactly one of the two (both is a start-up error).
    redis_keys = {"REDIS_URL", "REDIS_CLUSTER_NODES"}
    for key in sorted(server - {"GK_TEST_CLOCK"} - redis_keys):
        check(key in api_env, f"api: {key} (read by the server) is not passed")
    for key in sorted(worker_keys - {"GK_TEST_CLOCK"} - redis_keys):
        check(key in worker_env, f"worker: {key} (read by the worker) is not passed")
    for name, env in (("api", api_env), ("worker", worker_env)):
        check(len(redis_keys & set(env)) == 1, f"{name}: passes not exactly one of REDIS_URL, REDIS_CLUSTER_NODES")
    for name, env in (("api", api_env), ("worker", worker_env)):
        check("GK_TEST_CLOCK" not in env, f"{name}: GK_TEST_CLOCK is for tests only")
    check(api_env.get("PORT") == "8000" and 8000 in container_ports(api), "api: container port 8000 not published")
    check(api_env.get("BIND") == "0.0.0.0", "api: must listen on 0.0.0.0 inside the container")
    check("/health" in healthcheck_ok("api", api), "api: healthcheck does not ask /health")
    check("HEARTBEAT_FILE" in worker_env and worker_env["HEARTBEAT_FILE"] in healthcheck_ok("worker", worker),
          "worker: healthcheck does not read its HEARTBEAT_FILE")
    check(container_ports(worker) == set(), "worker: publishes a port, but serves none")

    # ${VAR}, ${VAR:-default}, ${VAR:?message}; $$ is a literal dollar.
    for var in sorted(set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))):
        check(var in env_keys, f"docker-compose.yml uses ${{{var}}}, which .env.example does not list")
    for var in ("JWT_SECRET", "ADMIN_TOKEN", "POSTGRES_PASSWORD"):
        check(re.search(r"\$\{" + var + r":\?", text) is not None, f"{var} is not required (${{{var}:?...}})")


def check_compose_cluster(env_keys):
    """docker-compose.cluster.yml: 6 cluster nodes, the one-shot that creates the cluster, and the
    API and worker on REDIS_CLUSTER_NODES naming nodes that exist."""
    name = "docker-compose.cluster.yml"
    text = read(name)
    doc = yaml.safe_load(text)
    services = doc.get("services") or {}
    nodes = {n: s for n, s in services.items() if re.match(r"^redis-\d+$", n)}
    check(len(nodes) == 6, f"{name}: {len(nodes)} redis nodes, want 6 (3 masters + 3 replicas)")
    addrs = set()
    for n, svc in nodes.items():
        cmd = " ".join(svc.get("command") or [])
        for opt in ("--cluster-enabled yes", "--cluster-require-full-coverage no", "--appendonly yes",
                    "--appendfsync everysec", "--maxmemory-policy noeviction"):
            check(opt in cmd, f"{name}: {n}: {opt} missing")
        check(any(str(v).endswith(":/data") for v in svc.get("volumes", [])), f"{name}: {n}: /data is not on a volume")
        check("redis-cli" in healthcheck_ok(n, svc), f"{name}: {n}: healthcheck does not ping")
        nets = svc.get("networks") or {}
        for net in (nets.values() if isinstance(nets, dict) else []):
            if isinstance(net, dict) and net.get("ipv4_address"):
                addrs.add(net["ipv4_address"])
    check(len(addrs) == 6, f"{name}: the redis nodes need 6 fixed addresses")
    init = services.get("redis-cluster-init", {})
    init_cmd = " ".join(str(c) for c in (init.get("command") or []))
    check("--cluster create" in init_cmd and "--cluster-replicas 1" in init_cmd,
          f"{name}: redis-cluster-init does not create the cluster with one replica per master")
    check(set(re.findall(r"(\d+\.\d+\.\d+\.\d+):6379", init_cmd)) == addrs,
          f"{name}: redis-cluster-init does not name every node")
    server, worker_keys = config_keys()
    for prog, keys in (("api", server), ("worker", worker_keys)):
        svc = services.get(prog, {})
        env = as_dict(svc.get("environment"))
        check("REDIS_URL" not in env, f"{name}: {prog}: passes REDIS_URL beside REDIS_CLUSTER_NODES")
        seeds = str(env.get("REDIS_CLUSTER_NODES", "")).split(",")
        check(all(s.rsplit(":", 1)[0] in addrs for s in seeds) and seeds != [""],
              f"{name}: {prog}: REDIS_CLUSTER_NODES must name redis nodes")
        for key in sorted(keys - {"GK_TEST_CLOCK", "REDIS_URL"}):
            check(key in env, f"{name}: {prog}: {key} is not passed")
        for key in env:
            check(key in env_keys, f"{name}: {prog}: passes {key}, which .env.example does not list")
        deps = svc.get("depends_on") or {}
        check((deps.get("redis-cluster-init") or {}).get("condition") == "service_completed_successfully",
              f"{name}: {prog}: does not wait for the cluster to be created")
        check((deps.get("postgres") or {}).get("condition") == "service_healthy",
              f"{name}: {prog}: does not wait for postgres to be healthy")
        check(svc.get("restart") in ("always", "unless-stopped"), f"{name}: {prog}: no restart policy")
    for var in sorted(set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))):
        check(var in env_keys, f"{name} uses ${{{var}}}, which .env.example does not list")


def check_dockerfile():
    lines = [l.strip() for l in read("Dockerfile").splitlines() if l.strip() and not l.strip().startswith("#")]
    froms = [i for i, l in enumerate(lines) if l.upper().startswith("FROM ")]
    check(len(froms) >= 2, "Dockerfile is not multi-stage (fewer than two FROM)")
    check(any(re.match(r"(?i)^FROM\s+\S+\s+AS\s+\w+", lines[i]) for i in froms[:-1]), "build stage has no name")
    final = lines[froms[-1]:] if froms else []
    check(any(re.match(r"(?i)^COPY\s+--from=", l) for l in final), "final stage copies nothing from the build stage")
    users = [l.split(None, 1)[1] for l in final if l.upper().startswith("USER ")]
    check(len(users) > 0, "final stage has no USER")
    if users:
        user = users[-1].split(":")[0]
        check(user not in ("root", "0"), f"final stage runs as {user}")
    check(not any(re.search(r"-dev\b", l) for l in final if l.upper().startswith("RUN ")) and
          not any(re.search(r"-dev\b", l) for l in final), "final stage installs -dev packages")


def check_dockerignore():
    entries = {l.strip() for l in read(".dockerignore").splitlines() if l.strip() and not l.startswith("#")}
    for e in (".env", ".git", "build", ".run"):
        check(e in entries, f".dockerignore does not exclude {e}")


def docker_compose_config():
    try:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        probe = None
    if probe is None or probe.returncode != 0:
        print("check.py: no `docker compose` here; checked the structure only", file=sys.stderr)
        return
    env = dict(os.environ, JWT_SECRET="x" * 32, ADMIN_TOKEN="y" * 32, POSTGRES_PASSWORD="z")
    for name in ("docker-compose.yml", "docker-compose.cluster.yml"):
        r = subprocess.run(["docker", "compose", "-f", os.path.join(ROOT, name), "config", "-q"],
                           capture_output=True, text=True, env=env, cwd=ROOT)
        check(r.returncode == 0, f"docker compose config ({name}): " + r.stderr.strip())


def main():
    env_keys, compose_only = env_example_keys()
    check(len(env_keys) > 0, ".env.example lists no variables")
    check_compose(env_keys, compose_only)
    check_compose_cluster(env_keys)
    check_dockerfile()
    check_dockerignore()
    docker_compose_config()
    for f in failures:
        print("check.py: " + f, file=sys.stderr)
    if failures:
        return 1
    print("check.py: docker-compose.yml, docker-compose.cluster.yml, Dockerfile and .dockerignore hold together",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
