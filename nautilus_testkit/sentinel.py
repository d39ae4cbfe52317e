"""A Sentinel-managed Redis on loopback: one master, one replica and three sentinels
(`redis-server --sentinel`), each a child process stopped by PID; and a Redis
Cluster with one replica per master. For the failover tests and benchmark."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from nautilus_probe.redis_server import RedisServer, RedisServerError

from . import free_port
from .http import wait_for

MASTER = "bus"
DOWN_AFTER_MS = 1000
# A replica's first sync starts at once (Redis waits 5 s by default, for more
# replicas to share a diskless transfer); one never synced cannot be promoted.
SYNC_NOW = ("--repl-diskless-sync-delay", "0")


class Sentinels:
    """master + replica + 3 sentinels watching them as `bus`, down-after 1 s."""

    def __init__(self, down_after_ms: int = DOWN_AFTER_MS, *, password: str | None = None,
                 sentinel_password: str | None = None) -> None:
        """`password`: the master's and replica's requirepass; `sentinel_password`:
        the sentinels' own."""
        auth = ("--requirepass", password, "--masterauth", password) if password else ()
        self.master = RedisServer(extra_args=(*SYNC_NOW, *auth))
        self.replica = RedisServer(extra_args=(*SYNC_NOW, *auth, "--replicaof", "127.0.0.1",
                                               str(self.master.port)))
        self.password, self.sentinel_password = password, sentinel_password
        self.down_after_ms = down_after_ms
        self.ports = [free_port() for _ in range(3)]
        self.dir = Path(tempfile.mkdtemp(prefix="np-sentinel-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return ("redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)
                + f"/{MASTER}/0")

    def start(self) -> Sentinels:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError("redis-server not found; run ./run setup")
        self.master.start()
        self.replica.start()
        wait_for(lambda: self._linked(), 10)
        for port in self.ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
                + (f"sentinel auth-pass {MASTER} {self.password}\n" if self.password else "")
                + (f"requirepass {self.sentinel_password}\nsentinel sentinel-pass "
                   f"{self.sentinel_password}\n" if self.sentinel_password else ""))
            self.procs.append(subprocess.Popen([binary, str(conf), "--sentinel"],
                                               stdout=subprocess.DEVNULL))
        # Every sentinel knows the replica and its two peers: a failover can start.
        wait_for(lambda: all(self._ready(p) for p in self.ports), 20)
        return self

    def _linked(self) -> bool:
        with redis.Redis(port=self.replica.port, password=self.password,
                         decode_responses=True) as r:
            return bool(r.info("replication").get("master_link_status") == "up")

    def _ready(self, port: int) -> bool:
        try:
            with redis.Redis(port=port, password=self.sentinel_password, decode_responses=True,
                             socket_timeout=1) as s:
                state = s.execute_command("SENTINEL", "MASTER", MASTER)
        except (redis.RedisError, OSError):
            return False
        state = dict(zip(state[::2], state[1::2], strict=True)) if isinstance(state, list) else state
        return int(state.get("num-slaves", 0)) >= 1 and int(state.get("num-other-sentinels", 0)) >= 2

    def master_port(self) -> int | None:
        """The master's port as a sentinel answers now (None: none answered)."""
        for port in self.ports:
            try:
                with redis.Redis(port=port, password=self.sentinel_password,
                                 decode_responses=True, socket_timeout=1) as s:
                    _, master_port = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                                       MASTER)
                    return int(master_port)
            except (redis.RedisError, OSError, TypeError, ValueError):
                continue
        return None

    def kill_master(self) -> float:
        """kill -9 the master the sentinels name now (a loaded machine can make them
        fail over before the test does); the monotonic time of the kill. After it,
        `master` is the killed one and `replica` the one to be promoted."""
        if self.master_port() == self.replica.port:
            self.master, self.replica = self.replica, self.master
        self.master.kill()
        return time.monotonic()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        self.master.remove()
        self.replica.remove()
        shutil.rmtree(self.dir, ignore_errors=True)


def cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free too, both outside the
    ephemeral range (an outgoing connection could take the twin before the node binds it)."""
    return free_port(twin=10000)


class Cluster:
    """A Redis Cluster on loopback: `masters` masters, `replicas` replicas each,
    a node declared failed after 1 s (cluster-node-timeout)."""

    def __init__(self, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 1000) -> None:
        self.servers = [RedisServer(cluster_port(), (
            "--cluster-enabled", "yes", "--cluster-node-timeout", str(node_timeout_ms), *SYNC_NOW))
            for _ in range(masters * (1 + replicas))]
        self.replicas = replicas
        self.ports = [s.port for s in self.servers]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> Cluster:
        for i, server in enumerate(self.servers):
            for attempt in range(3):
                try:
                    server.start()
                    break
                except RedisServerError:  # its port (or its bus port) taken meanwhile
                    if attempt == 2:
                        raise
                    server.remove()
                    server = self.servers[i] = RedisServer(cluster_port(), server.extra_args)
        self.ports = [s.port for s in self.servers]
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                        "--cluster-replicas", str(self.replicas), "--cluster-yes"], check=True,
                       capture_output=True, timeout=30)
        wait_for(self.healthy, 20)
        return self

    def healthy(self) -> bool:
        """Every live node says the cluster is up, and every replica has synced (one
        that has not cannot be promoted)."""
        for server in self.servers:
            if server.proc is None:
                continue
            with redis.Redis(port=server.port, decode_responses=True) as node:
                if node.cluster("info").get("cluster_state") != "ok":
                    return False
                replication = node.info("replication")
                if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                    return False
        return True

    def master_of(self, key: str) -> RedisServer:
        """The server holding `key`'s slot now."""
        port = self.ports[0] if self.servers[0].proc is not None else self.ports[1]
        with redis.RedisCluster(host="127.0.0.1", port=port) as c:
            node = c.get_node_from_key(key)
        return next(s for s in self.servers if s.port == int(node.port))

    def stop(self) -> None:
        for server in self.servers:
            server.remove()
