"""Benchmark: tessera's post cleaning (tasks/sentiment/clean.py under Dask) against a plain per-row pandas ``apply``.

Not a test: it generates synthetic posts (``synthetic_posts(n, faults=False)``, default n = 500k, i.e. 515k rows
with the 3 % reposts; cached as Parquet in ``--workdir``) and measures, each in its own subprocess (so the peak
RSS, polled with psutil over the process and its children, is its own):

- tessera, the way ``tasks/sentiment/tasks.py:clean_posts`` runs it (``--variants project``):
  ``clean.clean_partitions(texts, options, partition=PARTITION)`` under ``tasks.compute.dask_client()``
  (``--clusters threads``: one in-process worker, one thread per core). clean_partitions sees that the workers
  are threads of this process and runs the partitions on Dask's ``processes`` scheduler (one spawned process per
  core; their start-up is inside the timing). For comparison only, ``processes`` builds a process-based
  ``LocalCluster`` here (one single-threaded worker process per core), which clean_partitions uses as it is.
  ``previous`` is the production path before issue 4: the former ``clean.clean_posts`` (``clean_posts_previous``
  below: one pandas string pass per step) in ``dask.delayed`` per ``iloc`` partition on the same cluster.
  tessera_posts_s is the cleaning alone (graph, compute, concat; not the Parquet read, the imports or the cluster
  start-up, which are printed apart); peak RSS covers the process and all its children (the spawned ones too).
- the baseline: the same steps written per post (``clean_one``, below) and run with ``df["text"].apply`` on a
  random subsample (``--baseline-posts``, default 50k), extrapolated as posts/s. Single process, single core, no
  memoisation of our own (simplemma keeps its own internal LRU cache of lemmas, as it does for tessera).

Outputs are compared on ``--sample`` posts drawn from the baseline's subsample (token lists and clean_text
identical, with examples), on the whole subsample (clean_text), and whole outputs across runs by digest; exit
status 1 on any difference; the edge cases and every CleanOptions flag are also checked between ``project`` and
``previous`` (printed). ``--profile`` (automatic when tessera misses 30k posts/s) times each step of both on one
core, in this process.

    python benchmarks/sentiment_clean.py                                       # 500k posts, all runs, ~3 min
    python benchmarks/sentiment_clean.py --posts 50000 --clusters threads --variants project   # quick (~20 s)
    python benchmarks/sentiment_clean.py --workdir /tmp/sc --keep --repeat 3   # cache the posts, best of 3

Exit status: 0 when every run's output equals the baseline's (sample and subsample) and the other runs', 1 when
one differs, 2 on a usage or tool error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import NoReturn

from _rss import own_peak_rss_mb, run_measured  # benchmarks/_rss.py: runs a child and polls its peak RSS

ROOT = Path(__file__).resolve().parents[1]
POLL = 0.05  # RSS polling interval (s)
TARGET_RATIO = 5.0
TARGET_POSTS_S = 30_000
DELIMITERS = (" :", ": ")

# ------------------------------------------------------------------------------- baseline: the same steps, per post
# The baseline is a plain per-row implementation of the same steps; it shares the project's patterns and word
# lists so the two can only differ in how the work is done, not in what it does.
from tasks.sentiment.clean import ELONGATED, EMOTICONS, HASHTAG, MENTION, NUMBER, STOPWORDS, TOKEN, URL  # noqa: E402

WHITESPACE = re.compile(r"\s+")


def clean_one(text) -> list[str]:
    """One post, the tutorial way: every step on one string, every token lemmatized by its own call."""
    import emoji
    import simplemma

    t = "" if text is None or text != text else str(text)  # None / NaN -> "" (fillna)
    t = unicodedata.normalize("NFKC", t)
    for face, word in EMOTICONS.items():
        t = t.replace(face, word)
    if emoji.emoji_count(t):
        t = emoji.demojize(t, delimiters=DELIMITERS)
    t = URL.sub(" <url> ", t)
    t = MENTION.sub(" <user> ", t)
    t = HASHTAG.sub(r" <hashtag> \1 ", t)
    t = t.lower()
    t = NUMBER.sub(" <number> ", t)
    t = ELONGATED.sub(r"\1\1", t)
    t = WHITESPACE.sub(" ", t).strip()
    tokens = [tok for tok in TOKEN.findall(t) if tok not in STOPWORDS]
    return [simplemma.lemmatize(tok, lang="en") if tok.isalpha() else tok for tok in tokens]


# --------------------------------------------------------------------- previous: the production path before issue 4
# clean.clean_posts as it was (one pandas string pass per step, over Arrow-backed strings), mapped with
# dask.delayed over the partitions on whatever cluster is current (the threads of compute.dask_client()).

def clean_posts_previous(texts, options=None, *, lang: str = "en"):
    """The former ``clean.clean_posts``, verbatim but for the module prefixes (same output as the current one)."""
    import pandas as pd
    import simplemma

    from tasks.sentiment import clean

    o = options or clean.CleanOptions()
    out = texts.fillna("").astype(str)
    if o.normalize_unicode:
        out = out.map(lambda t: unicodedata.normalize("NFKC", t))
    if o.emoji_to_words:
        for face, word in clean.EMOTICONS.items():
            out = out.str.replace(face, word, regex=False)
        memo: dict = {}
        out = out.map(lambda t: t if t.isascii() else clean._demojize(t, memo))
    if o.replace_urls:
        out = out.str.replace(clean.URL, " <url> ", regex=True)
    if o.replace_mentions:
        out = out.str.replace(clean.MENTION, " <user> ", regex=True)
    out = out.str.replace(clean.HASHTAG, r" <hashtag> \1 " if o.keep_hashtag_words else " <hashtag> ", regex=True)
    if o.lowercase:
        out = out.str.lower()
    if o.replace_numbers:
        out = out.str.replace(clean.NUMBER, " <number> ", regex=True)
    if o.shorten_elongations:
        out = out.str.replace(clean.ELONGATED, r"\1\1", regex=True)
    tokens = clean.tokenize(out.str.replace(r"\s+", " ", regex=True).str.strip())
    if o.remove_stopwords:
        tokens = tokens.map(lambda toks: [t for t in toks if t not in clean.STOPWORDS])
    if o.lemmatize:
        unique = {t for toks in tokens for t in toks if t.isalpha()}
        lemma = {t: simplemma.lemmatize(t, lang=lang) for t in unique}
        tokens = tokens.map(lambda toks: [lemma.get(t, t) for t in toks])
    return pd.DataFrame({"clean_text": tokens.map(" ".join), "tokens": tokens}, index=texts.index)


def clean_variant(variant: str, texts, options, partition: int):
    """All posts through one variant, on the current Dask client: ``project`` is tasks.py's call,
    ``previous`` the former body of tasks.py's clean_posts with the former function."""
    import dask
    import pandas as pd

    from tasks.sentiment import clean

    if variant == "project":
        return clean.clean_partitions(texts, options, partition=partition), -(-len(texts) // partition)
    parts = [dask.delayed(clean_posts_previous)(texts.iloc[s:s + partition], options)
             for s in range(0, len(texts), partition)]
    return (pd.concat(dask.compute(*parts)) if parts else pd.DataFrame(columns=["clean_text", "tokens"])), len(parts)


# ----------------------------------------------------------------------------------------------------- helpers

def die(message: str) -> NoReturn:
    """A tool or setup error (not a mismatch): exit status 2."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def project_partition() -> int:
    """``PARTITION`` of tasks/sentiment/tasks.py, read from the source (importing it pulls in torch and Prefect)."""
    found = re.search(r"^PARTITION\s*=\s*([\d_]+)", (ROOT / "tasks/sentiment/tasks.py").read_text(), re.MULTILINE)
    return int(found.group(1).replace("_", "")) if found else 50_000


def generate(path: Path, n: int, seed: int) -> dict:
    """The posts as Parquet, unless already there (``--workdir`` caches them)."""
    if path.exists():
        return {"generated": False, "seconds": 0.0}
    sys.path.insert(0, str(ROOT))
    from tasks.sentiment.synthetic import synthetic_posts

    t0 = time.perf_counter()
    posts = synthetic_posts(n, seed=seed, faults=False)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    posts.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return {"generated": True, "seconds": time.perf_counter() - t0}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, its live children (worker processes) and its reaped ones
    (clean_partitions' process pool)."""
    import resource

    import psutil

    me = psutil.Process()
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = sum(me.cpu_times()[:2]) + reaped.ru_utime + reaped.ru_stime
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (busy time over every core) since boot."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - sum(getattr(t, k, 0.0) for k in ("iowait", "guest", "guest_nice"))


def other_share(busy: float, own: float, seconds: float) -> float:
    """Share of the machine's cores that other processes used during a measurement (0: it had them to itself)."""
    return max(0.0, busy - own) / (seconds * (os.cpu_count() or 1)) if seconds > 0 else 0.0


@contextmanager
def cluster_client(kind: str):
    """``threads``: tasks.compute.dask_client() as the flow uses it. ``processes``: a LocalCluster with one
    single-threaded worker process per core (same memory cap in total), built here only to compare."""
    from tasks.compute import dask_client, local_cluster_kwargs, quiet_dask_logs

    if kind == "threads":
        with dask_client() as client:
            yield client
        return
    from distributed import Client, LocalCluster

    quiet_dask_logs()
    kw = local_cluster_kwargs()
    cores = os.cpu_count() or 1
    kw.update(n_workers=cores, threads_per_worker=1, processes=True, memory_limit=kw["memory_limit"] // cores)
    with LocalCluster(**kw) as cluster, Client(cluster) as client:
        yield client


# ------------------------------------------------------------------------------------------------ children

def run_tessera(posts_path: str, cluster: str, variant: str, partition: int, sample_path: str) -> dict:
    """tasks/sentiment/tasks.py:clean_posts up to the concat (the Parquet read and write are left out)."""

    import psutil

    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from tasks.sentiment import clean
    from tasks.store import read_parquet

    t_import = time.perf_counter()
    posts = read_parquet(posts_path)
    opts = clean.CleanOptions()
    t_read = time.perf_counter()
    rss_input = psutil.Process().memory_info().rss / 2**20
    with cluster_client(cluster):
        t_cluster = time.perf_counter()
        cpu0, busy0 = cpu_seconds(), machine_busy_seconds()
        cleaned, n_parts = clean_variant(variant, posts["text"], opts, partition)
        t_clean = time.perf_counter()
        cpu, busy = cpu_seconds() - cpu0, machine_busy_seconds() - busy0
    t_close = time.perf_counter()
    if len(cleaned) != len(posts) or not cleaned.index.equals(posts.index):
        die(f"tessera returned {len(cleaned)} rows for {len(posts)} posts, or another index")
    positions = json.loads(Path(sample_path).read_text())
    picked = cleaned.iloc[positions["sample"]]
    texts = cleaned["clean_text"].tolist()
    return {"posts": len(posts), "parts": n_parts, "import_s": t_import - t0, "read_s": t_read - t_import,
            "cluster_s": t_cluster - t_read, "clean_s": t_clean - t_cluster, "close_s": t_close - t_clean,
            "cpu_s": cpu, "other_cpu_share": other_share(busy, cpu, t_clean - t_cluster),
            "input_rss_mb": rss_input,
            "self_maxrss_mb": own_peak_rss_mb(),
            "tokens": [list(t) for t in picked["tokens"]], "clean_text": picked["clean_text"].tolist(),
            "baseline_clean_text": [texts[i] for i in positions["baseline"]], "digest": digest(texts)}


def digest(clean_texts: list[str]) -> str:
    """Fingerprint of a whole output (clean_text has no newline; tokens are clean_text split on spaces)."""
    return hashlib.sha256("\n".join(clean_texts).encode()).hexdigest()[:16]


def run_baseline(posts_path: str, sample_path: str) -> dict:
    """``df["text"].apply(clean_one)`` on the subsample, timed; then the sample's outputs."""

    import pandas as pd

    positions = json.loads(Path(sample_path).read_text())
    posts = pd.read_parquet(posts_path)
    sub = posts.iloc[positions["baseline"]]
    clean_one(sub["text"].iloc[0])  # load emoji's and simplemma's data outside the timing
    cpu0, busy0 = time.process_time(), machine_busy_seconds()
    t0 = time.perf_counter()
    tokens = sub["text"].apply(clean_one)
    clean_text = tokens.map(" ".join)
    seconds = time.perf_counter() - t0
    cpu, busy = time.process_time() - cpu0, machine_busy_seconds() - busy0
    where = {p: i for i, p in enumerate(positions["baseline"])}
    rows = [where[p] for p in positions["sample"]]
    return {"posts": len(sub), "seconds": seconds, "cpu_s": cpu, "other_cpu_share": other_share(busy, cpu, seconds),
            "self_maxrss_mb": own_peak_rss_mb(),
            "tokens": [tokens.iloc[i] for i in rows], "clean_text": [clean_text.iloc[i] for i in rows],
            "baseline_clean_text": clean_text.tolist()}


# ------------------------------------------------------------------------------------------------ measuring

def measured(cmd: list[str], **kw) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run ``cmd``; wall-clock seconds and peak RSS (MiB, the process and its children, polled every 50 ms)."""
    seconds, peak_bytes, result = run_measured(cmd, poll=POLL, **kw)
    if result.returncode:
        sys.stderr.write(result.stderr[-4000:])
        die(f"failed ({result.returncode}): {' '.join(cmd)}")
    return seconds, peak_bytes / 2**20, result


def child(flag: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TESSERA_DASK_ADDRESS"}  # always a local cluster
    load = os.getloadavg()[0]
    seconds, peak, result = measured([sys.executable, str(Path(__file__).resolve()), flag, *args], cwd=ROOT, env=env)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    return {**info, "wall_s": seconds, "peak_rss_mb": max(peak, info["self_maxrss_mb"]), "load_before": load}


def compare(run: dict, base: dict, texts: list[str], base_texts) -> tuple[bool, int, list[str]]:
    """Sample: token lists and clean_text identical (examples of differences). Baseline subsample: clean_text
    identical (count of posts that differ, examples)."""
    diffs = [i for i, (a, b) in enumerate(zip(run["tokens"], base["tokens"], strict=True)) if a != b]
    diffs += [i for i, (a, b) in enumerate(zip(run["clean_text"], base["clean_text"], strict=True))
              if a != b and i not in diffs]
    examples = [f"  text={texts[i]!r}\n    tessera={run['tokens'][i]!r}\n    baseline={base['tokens'][i]!r}"
                for i in diffs[:5]]
    wide = [i for i, (a, b) in enumerate(zip(run["baseline_clean_text"], base["baseline_clean_text"], strict=True))
            if a != b]
    examples += [f"  (subsample) text={base_texts.iloc[i]!r}\n    tessera={run['baseline_clean_text'][i]!r}\n"
                 f"    baseline={base['baseline_clean_text'][i]!r}" for i in wide[:3]]
    return not diffs, len(wide), examples


# ------------------------------------------------------------------------------------------------ profile

def profile(texts, runs: int = 3) -> list[str]:
    """One core, in this process: each step of clean.clean_posts as the project spells it (checked equal to the
    real function), the proposal's steps, and the emoji replacement fuzz-tested against the project's."""
    import random

    import emoji
    import pandas as pd
    import simplemma

    from tasks.sentiment import clean

    simplemma.lemmatize("loved", lang="en")  # dictionary load: once per process, not per partition
    emoji.demojize("👍")
    lines = []

    def best(fn) -> tuple[float, object]:
        times, out = [], None
        for _ in range(runs):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    whole = {}
    for name, fn in (("previous", clean_posts_previous), ("project", clean.clean_posts)):
        whole[name], out = best(lambda fn=fn: fn(texts))
        if name == "previous":
            reference = out
        elif not (out["tokens"].tolist() == reference["tokens"].tolist()
                  and out["clean_text"].tolist() == reference["clean_text"].tolist()):
            lines.append(f"profile_WARNING={name} output differs from clean.clean_posts on the profile posts")
    n = len(texts)
    lines.append("profile_single_core " + " ".join(f"{k}_posts_s={n / v:.0f}" for k, v in whole.items())
                 + f" posts={n} best_of={runs}")

    # --- the previous steps, one by one (the code of clean_posts_previous with default options)
    steps: list[tuple[str, float]] = []
    state = {"s": texts}

    def step(name: str, fn) -> None:
        seconds, state["s"] = best(lambda: fn(state["s"]))
        steps.append((name, seconds))

    def emoticons(s):
        for face, word in clean.EMOTICONS.items():
            s = s.str.replace(face, word, regex=False)
        return s

    def emoji_runs(s):
        memo: dict = {}
        return s.map(lambda t: t if t.isascii() else clean._demojize(t, memo))

    def lemmas(tokens):
        unique = {t for toks in tokens for t in toks if t.isalpha()}
        lemma = {t: simplemma.lemmatize(t, lang="en") for t in unique}
        return tokens.map(lambda toks: [lemma.get(t, t) for t in toks])

    step("fillna_astype", lambda s: s.fillna("").astype(str))
    step("nfkc_map", lambda s: s.map(lambda t: unicodedata.normalize("NFKC", t)))
    step("emoticons_str_replace_x9", emoticons)
    step("emoji_runs_memo_map", emoji_runs)
    step("url_replace", lambda s: s.str.replace(clean.URL, " <url> ", regex=True))
    step("mention_replace", lambda s: s.str.replace(clean.MENTION, " <user> ", regex=True))
    step("hashtag_replace", lambda s: s.str.replace(clean.HASHTAG, r" <hashtag> \1 ", regex=True))
    step("lower", lambda s: s.str.lower())
    step("number_replace", lambda s: s.str.replace(clean.NUMBER, " <number> ", regex=True))
    step("elongation_replace", lambda s: s.str.replace(clean.ELONGATED, r"\1\1", regex=True))
    step("whitespace_replace_strip", lambda s: s.str.replace(r"\s+", " ", regex=True).str.strip())
    step("findall", lambda s: s.str.findall(clean.TOKEN))
    step("stopword_listcomp", lambda s: s.map(lambda toks: [t for t in toks if t not in clean.STOPWORDS]))
    step("lemma_memo_map", lemmas)
    step("join_frame", lambda s: pd.DataFrame({"clean_text": s.map(" ".join), "tokens": s}, index=texts.index))
    if state["s"]["tokens"].tolist() != reference["tokens"].tolist():
        lines.append("profile_WARNING=the step-by-step replica differs from clean_posts_previous")
    total = sum(s for _, s in steps)
    lines.append(f"profile_previous_steps total_s={total:.3f} (sum of the steps; posts={n})")
    lines += [f"  step={k} ms={1000 * v:.1f} share={v / total:.1%} us_per_post={1e6 * v / n:.2f}" for k, v in steps]

    # --- the emoji line alone: demojize every post, ASCII skip only, ASCII skip + runs (clean._demojize)
    items = texts.fillna("").astype(str).tolist()
    ref_s, ref = best(lambda: [emoji.demojize(t, delimiters=DELIMITERS) if emoji.emoji_count(t) else t
                               for t in items])
    skip_s, skip = best(lambda: [t if t.isascii() or not emoji.emoji_count(t)
                                 else emoji.demojize(t, delimiters=DELIMITERS) for t in items])

    def runs_fn():
        memo: dict = {}
        return [t if t.isascii() else clean._demojize(t, memo) for t in items]

    runs_s, runs_out = best(runs_fn)
    rng = random.Random(0)
    pool = list(emoji.EMOJI_DATA) + [" ", "a", "1", "#", "*", "x y", "é", "中", "\ufe0f", "\ufe0e", "\u200d",
                                     "\u20e3", "\U0001f3fb", "\u00a0"] * 300
    fuzz = ["".join(rng.choice(pool) for _ in range(rng.randint(1, 10))) for _ in range(50_000)]
    memo: dict = {}
    bad = sum((emoji.demojize(s, delimiters=DELIMITERS) if emoji.emoji_count(s) else s) != clean._demojize(s, memo)
              for s in fuzz)
    lines.append(f"profile_emoji_line every_post_ms={1000 * ref_s:.1f} ascii_skip_ms={1000 * skip_s:.1f} "
                 f"ascii_skip_plus_runs_memo_ms={1000 * runs_s:.1f} equal_on_posts={ref == skip == runs_out} "
                 f"fuzz_strings={len(fuzz)} fuzz_mismatches={bad}")

    # --- clean.clean_posts' passes, timed one by one (separate passes over lists, default options)
    fsteps: list[tuple[str, float]] = []
    cur = {"x": texts}

    def fstep(name: str, fn) -> None:
        seconds, cur["x"] = best(lambda: fn(cur["x"]))
        fsteps.append((name, seconds))

    def emoticons_one_pass(text):
        for face, word in clean.EMOTICONS.items():
            text = text.replace(face, word)
        return text

    def emoji_non_ascii_posts(text):
        memo: dict = {}
        return clean.SEPARATOR.join([t if t.isascii() else clean._demojize(t, memo)
                                     for t in text.split(clean.SEPARATOR)])

    def table_lookup(toks_all):
        table = {t: None if t in clean.STOPWORDS else simplemma.lemmatize(t, lang="en") if t.isalpha() else t
                 for t in set(chain.from_iterable(toks_all))}
        get = table.__getitem__
        return [[x for x in map(get, toks) if x is not None] for toks in toks_all]

    fstep("fillna_astype_tolist", lambda s: s.fillna("").astype(str).tolist())
    fstep("nfkc_non_ascii_only", lambda xs: [t if t.isascii() else unicodedata.normalize("NFKC", t) for t in xs])
    fstep("join_nul", lambda xs: clean.SEPARATOR.join(xs))
    fstep("emoticons_one_pass", emoticons_one_pass)
    fstep("emoji_runs_memo_non_ascii_posts", emoji_non_ascii_posts)
    fstep("url_sub_one_pass", lambda b: clean.URL_JOINED.sub(" <url> ", b))
    fstep("mention_sub_one_pass", lambda b: clean.MENTION.sub(" <user> ", b))
    fstep("hashtag_sub_one_pass", lambda b: clean.HASHTAG.sub(r" <hashtag> \1 ", b))
    fstep("lower_arrow_one_pass", lambda b: pd.Series([b], dtype=object).astype(str).str.lower().iloc[0])
    fstep("number_sub_one_pass", lambda b: clean.NUMBER.sub(" <number> ", b))
    fstep("elongation_sub_one_pass", lambda b: clean.ELONGATED.sub(r"\1\1", b))
    fstep("split_nul", lambda b: b.split(clean.SEPARATOR))
    fstep("findall_ascii_fast", lambda xs: [clean.TOKEN_LOWER.findall(t) if t.isascii() else clean.TOKEN.findall(t)
                                            for t in xs])
    fstep("stopword_lemma_table", table_lookup)
    fstep("join_frame", lambda xs: pd.DataFrame({"clean_text": [" ".join(t) for t in xs], "tokens": xs}))
    if cur["x"]["tokens"].tolist() != reference["tokens"].tolist():
        lines.append("profile_WARNING=the step-by-step replica of clean.clean_posts differs from clean_posts_previous")
    ftotal = sum(s for _, s in fsteps)
    lines.append(f"profile_project_steps total_s={ftotal:.3f} (the passes of clean.clean_posts, timed apart)")
    lines += [f"  step={k} ms={1000 * v:.1f} share={v / ftotal:.1%} us_per_post={1e6 * v / n:.2f}"
              for k, v in fsteps]
    return lines


EDGE_CASES = ["İstanbul was GREAT", "ΣΟΦΟΣ", "STRAẞE", "café ﬁne", "a\u2028b", "x\x1cy", " \u3000 hi \u00a0",
              "1\ufe0f\u20e3 #1 #tag", "👩\u200d💻 coding", "☕\ufe0e tea", "e\u0301t\u00e9", "WWW.X.COM :D ;)",
              "soooo   goooood!!!", "don't won't can't", "@a_b #c_d 3.14 1,000", "", None]


def edge_cases(sample_texts: list[str]) -> list[str]:
    """Tricky strings through clean.clean_posts, the baseline and the previous function (informational, not a
    gate); then clean.clean_posts against the previous function with each CleanOptions flag turned off, on the
    sample + tricky strings, once as one partition and once with a NUL in a post (the per-post fallback)."""
    from dataclasses import fields, replace

    import pandas as pd

    from tasks.sentiment import clean

    series = pd.Series(EDGE_CASES)
    project = clean.clean_posts(series)["tokens"].tolist()
    previous = clean_posts_previous(series)["tokens"].tolist()
    base = [clean_one(t) for t in EDGE_CASES]
    lines = []
    for t, p, f, b in zip(EDGE_CASES, project, previous, base, strict=True):
        if p != b or p != f:
            lines.append(f"  edge_case={t!r} project={p!r} baseline={b!r} previous={f!r}")
    out = [f"edge_cases={len(EDGE_CASES)} differing={len(lines)} (informational; not in the synthetic posts)", *lines]
    checked = differ = 0
    for flag in [None, *(f.name for f in fields(clean.CleanOptions))]:
        opts = clean.CleanOptions() if flag is None else replace(clean.CleanOptions(), **{flag: False})
        for extra in ([], ["a\x00b #x"]):
            texts = pd.Series(sample_texts + EDGE_CASES + extra)
            checked += 1
            if not clean.clean_posts(texts, opts).equals(clean_posts_previous(texts, opts)):
                differ += 1
                out.append(f"  project_differs_from_previous option={flag}=False nul_fallback={bool(extra)}")
    out.insert(len(lines) + 1, f"project_vs_previous_option_sets={checked} differing={differ} "
                               f"(each CleanOptions flag off, with and without the NUL fallback)")
    return out


# ------------------------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=500_000,
                        help="n for synthetic_posts(n, faults=False) (+3 %% reposts); default 500000")
    parser.add_argument("--partitions", default="25000,50000,100000",
                        help="posts per Dask partition to try, comma-separated; default 25000,50000,100000 "
                             "(the headline uses tasks.py's PARTITION)")
    parser.add_argument("--clusters", default="threads,processes",
                        help="threads (tasks.compute.dask_client(), the project's) and/or processes (a "
                             "process-per-core LocalCluster, to compare); default both")
    parser.add_argument("--variants", default="project,previous",
                        help="project (clean.clean_partitions, as tasks.py calls it), previous (the former "
                             "clean_posts, delayed per partition on the cluster); default project,previous")
    parser.add_argument("--variant-partition", type=int, default=0,
                        help="partition size for the non-project variants (0: the same list as project)")
    parser.add_argument("--baseline-posts", type=int, default=50_000,
                        help="posts the per-row baseline is timed on (random subsample; 0 = all); default 50000")
    parser.add_argument("--sample", type=int, default=2000, help="posts compared between the two; default 2000")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per configuration and of the baseline, the fastest counts (peak RSS: the highest)")
    parser.add_argument("--profile", choices=("auto", "yes", "no"), default="auto",
                        help="single-core step timings (auto: when tessera is under 30k posts/s)")
    parser.add_argument("--profile-posts", type=int, default=50_000, help="posts for --profile; default 50000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where the posts are cached; default a temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep --workdir's files (reused by the next run)")
    parser.add_argument("--_run-tessera", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--_run-baseline", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._run_tessera:
        posts, cluster, variant, partition, sample = args._run_tessera
        print(json.dumps(run_tessera(posts, cluster, variant, int(partition), sample)), flush=True)
        return 0
    if args._run_baseline:
        print(json.dumps(run_baseline(*args._run_baseline)), flush=True)
        return 0

    partitions = [int(p) for p in args.partitions.split(",") if p.strip()]
    clusters = [c.strip() for c in args.clusters.split(",") if c.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if (not partitions or min(partitions) < 1 or not clusters or set(clusters) - {"threads", "processes"}
            or set(variants) - {"project", "previous"} or "project" not in variants):
        parser.error("--partitions: sizes > 0; --clusters: threads,processes; --variants: project[,previous]")
    headline_partition = project_partition()
    sys.path.insert(0, str(ROOT))

    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="tessera-bench-", dir="/tmp")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    posts_path = workdir / f"posts-{args.posts}-seed{args.seed}.parquet"
    failed = False
    try:
        import numpy as np
        import pandas as pd

        gen = generate(posts_path, args.posts, args.seed)
        texts = pd.read_parquet(posts_path, columns=["text"])["text"]
        n = len(texts)
        rng = np.random.default_rng(args.seed)
        n_base = n if args.baseline_posts <= 0 else min(args.baseline_posts, n)
        base_pos = np.sort(rng.choice(n, size=n_base, replace=False))
        sample_pos = np.sort(rng.choice(base_pos, size=min(args.sample, n_base), replace=False))
        sample_path = workdir / f"sample-{os.getpid()}.json"
        sample_path.write_text(json.dumps({"baseline": base_pos.tolist(), "sample": sample_pos.tolist()}))
        sample_texts = texts.iloc[sample_pos].tolist()
        non_ascii = float(texts.map(lambda t: not t.isascii()).mean())
        print(f"inputs={posts_path} generated={gen['generated']} generate_seconds={gen['seconds']:.1f} posts={n} "
              f"non_ascii_share={non_ascii:.3f} mean_chars={texts.str.len().mean():.1f} cpus={os.cpu_count()} "
              f"load_1m={os.getloadavg()[0]:.2f} project_partition={headline_partition}")

        runs: list[dict] = []
        for variant in variants:
            sizes = partitions if variant == "project" or not args.variant_partition else [args.variant_partition]
            for cluster in clusters:
                for partition in sizes:
                    best = None
                    peak = 0.0
                    for _ in range(args.repeat):
                        r = child("--_run-tessera", str(posts_path), cluster, variant, str(partition),
                                  str(sample_path))
                        peak = max(peak, r["peak_rss_mb"])
                        best = r if best is None or r["clean_s"] < best["clean_s"] else best
                    best.update(peak_rss_mb=peak, cluster=cluster, variant=variant, partition=partition,
                                posts_s=n / best["clean_s"])
                    runs.append(best)
                    print(f"run variant={variant} cluster={cluster} partition={partition} parts={best['parts']} "
                          f"posts_s={best['posts_s']:.0f} clean_seconds={best['clean_s']:.2f} "
                          f"startup_seconds={best['import_s'] + best['read_s'] + best['cluster_s']:.2f} "
                          f"wall_seconds={best['wall_s']:.2f} cores_used={best['cpu_s'] / best['clean_s']:.2f} "
                          f"other_cpu_share={best['other_cpu_share']:.2f} "
                          f"peak_rss_mb={best['peak_rss_mb']:.0f} input_rss_mb={best['input_rss_mb']:.0f} "
                          f"load_1m_before={best['load_before']:.2f}", flush=True)

        base = min((child("--_run-baseline", str(posts_path), str(sample_path)) for _ in range(args.repeat)),
                   key=lambda r: r["seconds"])
        base_posts_s = base["posts"] / base["seconds"]
        print(f"baseline posts={base['posts']} of {n} (random subsample, extrapolated as posts/s; df['text']"
              f".apply(clean_one), one core) baseline_seconds={base['seconds']:.2f} "
              f"baseline_posts_s={base_posts_s:.0f} cores_used={base['cpu_s'] / base['seconds']:.2f} "
              f"other_cpu_share={base['other_cpu_share']:.2f} "
              f"baseline_peak_rss_mb={base['peak_rss_mb']:.0f} load_1m_before={base['load_before']:.2f} "
              f"extrapolated_full_seconds={n / base_posts_s:.1f}")

        base_texts = texts.iloc[base_pos]
        digests: dict[str, int] = {}
        for r in runs:
            digests[r["digest"]] = digests.get(r["digest"], 0) + 1
        usual = max(digests, key=digests.get)
        for r in runs:
            r["equal"], r["wide_diffs"], examples = compare(r, base, sample_texts, base_texts)
            failed |= not r["equal"] or r["wide_diffs"] > 0 or r["digest"] != usual
            print(f"sample variant={r['variant']} cluster={r['cluster']} partition={r['partition']} "
                  f"sample_posts={len(sample_pos)} equal={r['equal']} baseline_subsample_posts={len(base_pos)} "
                  f"differing_in_subsample={r['wide_diffs']} full_output_digest={r['digest']}"
                  f"{'' if r['digest'] == usual else ' (DIFFERS from the other runs: ' + usual + ')'}")
            for line in examples:
                print(line)
        for line in edge_cases(sample_texts):
            failed |= line.startswith("  project_differs_from_previous")
            print(line)

        head = next((r for r in runs if r["variant"] == "project" and r["cluster"] == "threads"
                     and r["partition"] == headline_partition), None)
        if head is None:  # the project's configuration was not asked for: its fastest run stands in
            head = max((r for r in runs if r["variant"] == "project"),
                       key=lambda r: (r["cluster"] == "threads", r["posts_s"]))
        ratio = head["posts_s"] / base_posts_s
        print(f"headline variant=project cluster={head['cluster']} partition={head['partition']} "
              f"(tasks.py: compute.dask_client() + PARTITION={headline_partition})")
        print(f"tessera_posts_s={head['posts_s']:.0f}")
        print(f"baseline_posts_s={base_posts_s:.0f}")
        print(f"ratio={ratio:.2f}")
        print(f"tessera_peak_rss_mb={head['peak_rss_mb']:.0f}")
        print(f"equal_on_sample={head['equal']}")
        print(f"equal_on_baseline_subsample={head['wide_diffs'] == 0} full_outputs_agree_across_runs="
              f"{len(digests) == 1}")
        print(f"targets=ratio>={TARGET_RATIO:g}:{'met' if ratio >= TARGET_RATIO else 'MISSED'},"
              f"posts_s>={TARGET_POSTS_S}:{'met' if head['posts_s'] >= TARGET_POSTS_S else 'MISSED'}")
        for variant in variants:
            own = [r for r in runs if r["variant"] == variant]
            top = max(own, key=lambda r: r["posts_s"])
            print(f"fastest variant={variant} cluster={top['cluster']} partition={top['partition']} "
                  f"posts_s={top['posts_s']:.0f} ratio={top['posts_s'] / base_posts_s:.2f} "
                  f"peak_rss_mb={top['peak_rss_mb']:.0f} equal_on_sample={top['equal']} "
                  f"differing_in_subsample={top['wide_diffs']}")
        if args.profile == "yes" or (args.profile == "auto" and head["posts_s"] < TARGET_POSTS_S):
            sub = texts.iloc[base_pos[:args.profile_posts]].reset_index(drop=True)
            for line in profile(sub):
                print(line)
        load = os.getloadavg()
        if load[0] > (os.cpu_count() or 1) + 0.5:
            print(f"NOTE: 1-minute load {load[0]:.2f} on {os.cpu_count()} cores: other jobs share the machine; "
                  f"compare cores_used with the core count and repeat (--repeat 3) before trusting small gaps")
        if failed:
            print("MISMATCH: some run's output differs from the per-row baseline or from the other runs (above)")
    finally:
        if "sample_path" in locals():
            sample_path.unlink(missing_ok=True)
        if own_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
