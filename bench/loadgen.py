"""The acknowledgement benchmark's clients, in a process of their own.

The fakes (Slack, the provider endpoint) live in the benchmark's main process and are
busy while the bot runs (every outbox post, every response_url answer). Clients in that
same process would wait for its GIL before reading their clock, and only while the bot
(not the bare app) is being measured; here they wait for nothing but the server.

    python -m bench.loadgen URL SLACK_BASE_URL USER[,USER…] PER_CLIENT TAG [MEAN_PAUSE]

prints one JSON object: latencies (s), errors, sent (response_url name → time.time()),
seconds.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.harness import AUTO_ENV, ROLE, KeepAliveSim, jitter, run_threads

MEAN_PAUSE = 1.0
SEED = 7


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sent: dict[str, float] = field(default_factory=dict)  # response_url name → time.time()
    seconds: float = 0.0
    cpu: float = 0.0  # CPU seconds the server process used meanwhile (filled by the caller)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


class _SlackAddress:
    """What SlackSim asks of a FakeSlack, for a fake running in another process: the
    ids Slack issues with each command are made up here, and BenchSlack issues each
    response_url when the bot first answers through it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def response_url(self, name: str) -> str:
        return f"{self.base_url}/respond/{name}"

    def issue_response_url(self, prefix: str) -> tuple[str, str]:
        # Unique across runs: the benchmark finds each answer by its response_url's name.
        name = f"{prefix}-{uuid.uuid4().hex[:16]}"
        return name, self.response_url(name)

    def issue_trigger_id(self) -> str:
        return f"{int(time.time())}.{uuid.uuid4().hex[:20]}"

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        return None


def generate(
    url: str,
    slack_base: str,
    users: list[str],
    per_client: int,
    tag: str,
    mean_pause: float = MEAN_PAUSE,
) -> Load:
    """Every user sends ``per_client`` signed ``/jit request`` commands, each after a
    random pause (uniform 0–2×``mean_pause``); the schedule depends only on SEED, so
    every server gets the same one."""
    sim = KeepAliveSim(url, _SlackAddress(slack_base))  # type: ignore[arg-type]
    load = Load()
    lock = threading.Lock()
    gate = threading.Barrier(len(users))

    def client(i: int) -> None:
        rng = jitter(SEED + i)
        gate.wait()
        try:
            for n in range(per_client):
                time.sleep(rng.uniform(0, 2 * mean_pause))
                sent = time.time()
                reply = sim.command(users[i], f"request {ROLE} {AUTO_ENV} 1h {tag} ack {i}-{n}")
                elapsed = sim.last_elapsed()
                with lock:
                    if reply.status == 200 and reply.response_url_name:
                        load.latencies.append(elapsed)
                        load.sent[reply.response_url_name] = sent
                    else:
                        load.errors.append(f"HTTP {reply.status}: {reply.body[:100]}")
        finally:
            sim.close()

    started = time.monotonic()
    errors = run_threads(len(users), client)
    load.seconds = time.monotonic() - started
    load.errors += [repr(e) for e in errors]
    return load


def main(argv: list[str]) -> int:
    url, slack_base, users, per_client, tag, *pause = argv
    mean_pause = float(pause[0]) if pause else MEAN_PAUSE
    load = generate(url, slack_base, users.split(","), int(per_client), tag, mean_pause)
    json.dump(asdict(load), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
