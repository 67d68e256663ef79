"""``sufdec bench hosts``: many hosts behind a load balancer, with and without a shared corpus."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.table import Table

from sufdec.cli import common
from sufdec.drafters.settings import DraftSettings


def hosts(
    hosts_n: int = typer.Option(4, "--hosts", min=1, help="Hosts behind the load balancer."),
    routing: str = typer.Option(
        "requests,agent",
        "--routing",
        help="requests: round robin over the requests in a shuffled order; agent: tasks of --steps "
        "follow-up questions on one database, consecutive steps on different hosts; or both.",
    ),
    steps: int = typer.Option(4, "--steps", min=2, help="agent: questions per task."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N questions."),
    max_spec_tokens: int = common.setting(DraftSettings, "max_spec_tokens", "--max-spec-tokens"),
    seed: int = typer.Option(0, "--seed", min=0, help="Shuffle and task order."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Model-free: tau with a corpus shared by every host against each host alone (Spider).

    Each request is drafted by the host it is routed to, from that host's trees, then
    learned by it (alone) or by every host (shared, as `--share` does). A new host joins
    halfway: reported is its tau over its first 20 requests, the others' tau meanwhile, and
    how many requests it serves before it reaches 95% of theirs.
    """
    from sufdec.bench import datasets
    from sufdec.bench.hosts import agent_tasks, round_robin, run_hosts
    from sufdec.bench.replay import ReplayConfig

    kinds = [r.strip() for r in routing.split(",") if r.strip()]
    if not kinds or any(k not in ("requests", "agent") for k in kinds):
        raise common.fail("--routing takes requests, agent or both (comma list)", 2)
    config = ReplayConfig(DraftSettings(max_spec_tokens=max_spec_tokens), trees="both")
    with common.clean_errors():
        tok = common.load_text_tokenizer(None)
        rows = datasets.spider_by_database(common.cache_root())[:limit]
        prompts = tok.encode_batch([p for _, p, _ in rows])
        answers = tok.encode_batch([a for _, _, a in rows])
    questions = [(db, p, a) for (db, _, _), p, a in zip(rows, prompts, answers)]
    results = []
    for kind in kinds:
        if kind == "requests":
            routed = round_robin([(p, a) for _, p, a in questions], hosts_n, seed)
        else:
            routed = agent_tasks(questions, hosts_n, steps=steps, seed=seed)
        for shared in (False, True):
            run = run_hosts(routed, hosts_n, config, shared=shared, join_at=len(routed) // 2)
            results.append({"routing": kind, "requests": len(routed), **run.to_dict()})
    if as_json:
        print(json.dumps({"corpus": "spider", "hosts": hosts_n, "results": results}))
        return
    table = Table(
        "routing",
        "corpus",
        "tau",
        "acceptance",
        "new host, first 20",
        "others meanwhile",
        "new host reaches 95% after",
        title=f"spider over {hosts_n} hosts (+1 joining halfway), model-free",
    )
    for r in results:
        catch = r["newcomer_catch_up_requests"]
        table.add_row(
            f"{r['routing']} ({r['requests']})",
            "shared" if r["shared"] else "each host alone",
            f"{r['tau']:.3f}",
            f"{r['acceptance_rate']:.3f}",
            f"{r['newcomer_tau_first_20']:.3f}",
            f"{r['others_tau_after_join']:.3f}",
            f"{catch} requests" if catch is not None else "not within the run",
        )
    common.console.print(table)
