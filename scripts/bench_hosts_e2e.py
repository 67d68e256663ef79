"""Many hosts end to end on the default model: four hosts, round robin, each alone or all
sharing one corpus through a real PostgreSQL (docs/BENCHMARKS.md, "Many hosts").

    python scripts/bench_hosts_e2e.py [--requests 48] [--hosts 4] [--max-new-tokens 64] [--join-at N]

One process plays the hosts: one model (they would each load their own; its weights are
read-only here), and per host its own store and drafting service, as `sufdec generate`
opens them. Plain decoding, the hosts alone and the hosts sharing run side by side,
request by request (the order rotating), so that each meets the same machine. Spider
questions in a shuffled order go to host i % N; each host learns what it generates. With
sharing, every store is joined to the table by a following Replica (the code `--share`
runs), and a request starts once its host has applied every output learned so far (about
5 ms after it was learned; a request takes seconds). Greedy, float32, CPU. Prints one JSON
object: tokens per step and tokens per second of each, and whether the outputs are
identical to plain decoding's (they must be: speculation is lossless either way).

``--join-at N``: one more host joins at request N and takes its turn from then on, cold
(alone) or after replaying the table (shared); the output adds its tokens per step over
its first requests against the other hosts' over the same stretch.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sufdec.bench import datasets  # noqa: E402
from sufdec.drafters.service import DraftService  # noqa: E402
from sufdec.drafters.settings import DraftSettings  # noqa: E402
from sufdec.engine import GenerationConfig, SpeculativeGenerator, load_model  # noqa: E402
from sufdec.models import default_cache_root  # noqa: E402
from sufdec.prompts import encode_prompt  # noqa: E402
from sufdec.share import Replica  # noqa: E402
from sufdec.store import Store  # noqa: E402
from sufdec.tokenization import tokenizer_info  # noqa: E402


class Cluster:
    """``hosts`` hosts, each with its own store and drafting service over the one model;
    ``url``: every store joined to the shared table by a following Replica."""

    def __init__(
        self, model, tok, hosts: int, root: Path, url: str | None = None, spec: str = "tree", late: int = 0
    ) -> None:
        info = tokenizer_info(tok, "default")
        self.stores = [Store.open(root / f"host{h}", info) for h in range(hosts + late)]
        self.url, self.hosts = url, hosts  # the `late` hosts last: joined by join()
        self.replicas = [Replica(s, url, poll_s=0.5).start() for s in self.stores[:hosts]] if url else []
        self.log: list[tuple[int, int, int]] = []  # per request: host, tokens, steps
        self.gens = []
        for st in self.stores:
            tree = lambda st=st: (st.refresh(), st.tree)[1]  # noqa: E731 - the store's newest tree
            self.gens.append(
                SpeculativeGenerator(
                    model, tok, drafting=DraftService(DraftSettings(spec=spec), tree=tree, learn=st.append)
                )
            )
        self.learned: set[tuple[int, ...]] = set()
        self.outputs: list[list[int]] = []
        self.steps = self.tokens = 0
        self.seconds = 0.0

    def join(self) -> None:
        """The next late host joins: with sharing, it replays the table first, then follows."""
        if self.url:
            replica = Replica(self.stores[self.hosts], self.url, poll_s=0.5)
            replica.sync()
            self.replicas.append(replica.start())
        self.hosts += 1

    def serve(self, i: int, ids: list[int], new_tokens: int) -> None:
        h = i % self.hosts
        if self.replicas:  # its host has applied everything learned so far (~5 ms after it was)
            deadline = time.monotonic() + 10
            while len(self.stores[h]) < len(self.learned) and time.monotonic() < deadline:
                time.sleep(0.002)
        res = self.gens[h].generate(ids, GenerationConfig(max_new_tokens=new_tokens))
        self.learned.add(tuple(res.token_ids))
        if self.replicas:
            self.replicas[h].kick()
        self.outputs.append(res.token_ids)
        self.log.append((h, res.new_tokens, res.steps))
        self.steps += res.steps
        self.tokens += res.new_tokens
        self.seconds += res.elapsed_s

    def close(self) -> dict:
        for r in self.replicas:
            r.close()
        for st in self.stores:
            st.close()
        return {
            "tokens": self.tokens,
            "steps": self.steps,
            "tokens_per_step": round(self.tokens / self.steps, 4),
            "tokens_per_s": round(self.tokens / self.seconds, 3),
        }


def new_host(log: list[tuple[int, int, int]], new: int, join_at: int, first: int = 5) -> dict:
    """Tokens per step of the host that joined (host id ``new``) over its first ``first``
    requests, and of the others over the same stretch of requests; then over the rest."""
    after = log[join_at:]
    mine = [i for i, (h, _, _) in enumerate(after) if h == new]
    if len(mine) < first:
        return {}
    cut = mine[first - 1] + 1

    def tps(rows: list[tuple[int, int, int]]) -> float:
        return round(sum(t for _, t, _ in rows) / max(1, sum(s for _, _, s in rows)), 4)

    early, rest = after[:cut], after[cut:]
    return {
        "requests_first": first,
        "new_first": tps([r for r in early if r[0] == new]),
        "others_same_stretch": tps([r for r in early if r[0] != new]),
        "new_rest": tps([r for r in rest if r[0] == new]),
        "others_rest": tps([r for r in rest if r[0] != new]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--join-at", type=int, default=0, help="one more host joins at this request (0: none)")
    args = ap.parse_args()
    from sufdec.cli.common import default_model_dir
    from tests.share.postgres import PostgresServer

    root_cache = default_cache_root(os.environ)
    model, tok = load_model(str(default_model_dir()), device="cpu", dtype="float32")
    rows = datasets.spider_by_database(root_cache)
    random.Random(args.seed).shuffle(rows)
    prompts = [encode_prompt(tok, {"prompt": p}) for _, p, _ in rows[: args.requests]]
    server = PostgresServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="sufdec-hosts-") as tmp:
            root = Path(tmp)
            late = 1 if args.join_at else 0
            url = server.create_database("e2e")
            clusters = {
                "plain": Cluster(model, tok, args.hosts, root / "plain", spec="off", late=late),
                "alone": Cluster(model, tok, args.hosts, root / "alone", late=late),
                "shared": Cluster(model, tok, args.hosts, root / "shared", url=url, late=late),
            }
            names = list(clusters)
            for i, ids in enumerate(prompts):  # the three side by side, request by request, rotating
                if late and i == args.join_at:
                    for c in clusters.values():
                        c.join()
                for k in range(len(names)):
                    clusters[names[(i + k) % len(names)]].serve(i, ids, args.max_new_tokens)
            outputs = {name: c.outputs for name, c in clusters.items()}
            result = {"requests": args.requests, "hosts": args.hosts, "max_new_tokens": args.max_new_tokens}
            if late:
                result["join_at"] = args.join_at
                result["new_host"] = {name: new_host(clusters[name].log, args.hosts, args.join_at) for name in names}
            result.update({name: c.close() for name, c in clusters.items()})
    finally:
        server.close()
    result["identical_to_plain"] = outputs["alone"] == outputs["plain"] == outputs["shared"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
