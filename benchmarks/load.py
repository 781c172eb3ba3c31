"""Load benchmark of the HTTP API: latency and throughput at 1, 4 and 16 concurrent clients.

Starts a real server (``grader serve``) on a free loopback port with a temporary store seeded with
one 5-key-point rubric, grades distinct ~66-word answers, and compares with the bare model in this
process, after the server has stopped (issue 19): the single-client p50 with one forward pass over the
same answer, and the top throughput with the bare encoder reading the same answers one pass each
(unpadded, as grading does; padded batches of 64 and the span texts of separate mode are reported too).
Writes a Markdown table to benchmarks/results/load.md.

    python benchmarks/load.py [--requests 300] [--clients 1 4 16] [--span-vectors pooled|separate]
    python benchmarks/load.py --postgres --workers 2 --out benchmarks/results/load-postgres.md

``--postgres`` starts a throwaway PostgreSQL server (tests/pgserver.py, Debian's binaries) for the
store instead of SQLite; ``--workers`` runs ``grader serve --workers N`` (each loads its own model).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "load.md"

RUBRIC = """\
id: bench-batch-norm
question: What is batch normalization, and why does it help when training neural networks?
max_score: 5
key_points:
  - id: normalizes
    text: It normalizes a layer's activations to zero mean and unit variance using mini-batch statistics.
  - id: scale-shift
    text: It applies a learnable scale and shift after normalizing.
  - id: running-stats
    text: At inference it uses running averages of the mean and variance instead of batch statistics.
  - id: faster
    text: It allows higher learning rates and makes training faster and more stable.
  - id: regularizes
    text: The noise of batch statistics has a mild regularizing effect.
"""

# Every sentence carries a number, so no two answers share a span: the server cannot skip work by
# deduplicating identical texts within a micro-batch, and the bare-encoder baseline does the same work.
SENTENCES = (
    "Batch normalization normalizes each feature to zero mean and unit variance over the {a} examples of a mini-batch.",
    "A learned scale and shift follow, so layer {b} keeps its expressiveness.",
    "At test time it uses running averages collected over {c} training steps.",
    "It allowed a learning rate {d} percent higher and steadier, faster training.",
    "Batch noise regularizes slightly, so a dropout rate of 0.{e} was unnecessary.",
)
RANGES = {"a": (8, 9999), "b": (1, 9999), "c": (1000, 999_999), "d": (10, 9999), "e": (1000, 9999)}


def make_answers(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    answers = set()
    while len(answers) < n:
        values = {k: rng.randint(lo, hi) for k, (lo, hi) in RANGES.items()}
        answers.add(" ".join(s.format(**values) for s in SENTENCES))
    return sorted(answers)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, port: int, database_url: str | None = None, workers: int = 1) -> subprocess.Popen:
    rubrics = tmp / "rubrics"
    rubrics.mkdir()
    (rubrics / "bench-batch-norm.yaml").write_text(RUBRIC)
    env = {
        **os.environ,
        "GRADER_RUBRICS_DIR": str(rubrics),
        "GRADER_DATABASE_URL": database_url or f"sqlite:///{tmp / 'bench.db'}",
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "grader.cli", "serve", "--port", str(port), "--workers", str(workers)]
    # The log goes to a file: a pipe nobody reads fills with access-log lines (~100 bytes a request) and, past
    # 64 KB, blocks the server mid-run.
    log = tmp / "server.log"
    with log.open("w") as sink:
        server = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit("server did not become healthy within 300 s")


@dataclass
class Run:
    clients: int
    requests: int
    seconds: float
    latencies: list[float]
    mean_batch: float = 0.0  # answers per model call during this run, from the server's /metrics
    client_cpu_ms: float = float("nan")  # CPU the load generator (this process) spent per request
    server_cpu_ms: float = float("nan")  # CPU the server process spent per request (Linux, one server process)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1] * 1000


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and all its threads so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


async def load(base_url: str, answers: list[str], clients: int) -> Run:
    """``clients`` workers, each sending its next request as soon as the previous one is answered."""
    todo = iter(answers)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:

        async def one_client() -> None:
            for answer in todo:
                started = time.perf_counter()
                response = await client.post("/v1/grade", json={"rubric_id": "bench-batch-norm", "answer": answer})
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Run(clients, len(answers), elapsed, latencies, client_cpu_ms=cpu / len(answers) * 1000)


@dataclass
class Bare:
    """The bare model on the benchmark's answers, in this process, same backend as the server."""

    single_ms: float  # median of one forward pass over one whole answer
    answers_per_s: float  # one unpadded pass per answer (grading's rule since issue 21), in the encoder's lanes
    cpu_ms: float  # CPU per answer (all threads) of that reading
    lanes: str  # the encoder's lanes and threads per pass, as the server ran them
    single_all_ms: float  # the same pass with every thread torch has, outside lanes (torch only)
    sequential_per_s: float  # one pass per answer, one after another with every thread (torch only)
    padded_per_s: float  # padded batches of 64 answers: the model's best throughput, for reference
    spans_per_s: float  # every span text of separate mode, one pass each
    spans_per_answer: int


def bare_model(answers: list[str], singles: int = 40) -> Bare:
    from grader.encoder import configured_encoder, load_encoder
    from grader.match import answer_spans, span_text
    from grader.segment import distinct_clauses, segment_answer
    from grader.settings import get_settings

    settings = get_settings()
    encoder = configured_encoder(settings)

    def passes(reader) -> tuple[float, float, float]:
        """(median ms of one pass over one answer, answers/s reading all of them one pass each, CPU ms per answer)."""
        reader.read(answers[:4])  # warm-up
        times = []
        for answer in answers[:singles]:
            started = time.perf_counter()
            reader.read([answer])
            times.append(time.perf_counter() - started)
        started, cpu = time.perf_counter(), time.process_time()
        reader.read(answers)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        return statistics.median(times) * 1000, len(answers) / elapsed, cpu / len(answers) * 1000

    single_ms, per_answer, cpu_ms = passes(encoder)
    single_all_ms, sequential = float("nan"), float("nan")
    lanes = f"{encoder.lanes} lane(s)"
    if settings.backend == "torch":  # the same model outside lanes: one answer after another, every thread
        lanes += f", {encoder.lane_threads} thread(s) per pass"
        single_all_ms, sequential, _ = passes(load_encoder(settings.model_path, settings.encode_batch_size, lanes=1))
    padded = float("nan")
    if hasattr(encoder, "model"):  # torch: sentence-transformers' own padded, length-sorted batches
        started = time.perf_counter()
        encoder.model.encode(answers, batch_size=64)
        padded = len(answers) / (time.perf_counter() - started)
    spans = []
    for answer in answers:
        clauses = distinct_clauses(segment_answer(answer))
        spans.append([span_text(clauses, s) for s in answer_spans(clauses)])
    started = time.perf_counter()
    encoder.encode([t for per in spans for t in per])
    spans_rate = len(answers) / (time.perf_counter() - started)
    return Bare(
        single_ms, per_answer, cpu_ms, lanes, single_all_ms, sequential, padded, spans_rate, round(statistics.mean(map(len, spans)))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=1, help="server processes (grader serve --workers)")
    parser.add_argument("--postgres", action="store_true", help="store in a throwaway PostgreSQL instead of SQLite")
    parser.add_argument("--span-vectors", choices=("separate", "pooled"), default=None, help="GRADER_SPAN_VECTORS")
    args = parser.parse_args()
    if args.span_vectors:
        os.environ["GRADER_SPAN_VECTORS"] = args.span_vectors

    answers = make_answers(args.requests * (len(args.clients) + 1))
    words = statistics.mean(len(a.split()) for a in answers)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        database_url = None
        if args.postgres:
            sys.path.insert(0, str(ROOT / "tests"))
            from pgserver import throwaway_postgres

            database_url = stack.enter_context(throwaway_postgres()).create_database("bench")
        server = start_server(Path(tmp), port, database_url, args.workers)
        print(f"server ready in {time.perf_counter() - started:.1f} s", flush=True)
        try:
            asyncio.run(load(base_url, answers[: args.requests], 4))  # warm-up, not reported
            runs = []
            for k, clients in enumerate(args.clients, start=1):
                batch = answers[k * args.requests : (k + 1) * args.requests]
                before = micro_batch_totals(base_url)
                server_cpu = process_cpu_seconds(server.pid)
                run = asyncio.run(load(base_url, batch, clients))
                run.mean_batch = micro_batch_delta(base_url, before)
                if args.workers == 1:  # several workers are child processes, not counted in the parent's /proc entry
                    run.server_cpu_ms = (process_cpu_seconds(server.pid) - server_cpu) / run.requests * 1000
                runs.append(run)
                print(
                    f"{clients:>3} clients: p50 {run.percentile(50):6.1f} ms  p99 {run.percentile(99):6.1f} ms  "
                    f"{run.rps:6.1f} req/s  mean micro-batch {run.mean_batch:.1f}  CPU per request: server "
                    f"{run.server_cpu_ms:.1f} ms, load generator {run.client_cpu_ms:.1f} ms",
                    flush=True,
                )
            load_avg = os.getloadavg()[0]
        finally:
            server.terminate()
            server.wait(60)
    bare = bare_model(answers[: args.requests])
    store = "PostgreSQL" if args.postgres else "SQLite"
    write_report(args.out, runs, bare, words, load_avg, store, args.workers)


def micro_batch_totals(base_url: str) -> tuple[float, float]:
    lines = httpx.get(f"{base_url}/metrics").text.splitlines()
    value = {ln.split()[0]: float(ln.split()[1]) for ln in lines if ln.startswith("grader_microbatch_size_")}
    return value["grader_microbatch_size_count"], value["grader_microbatch_size_sum"]


def micro_batch_delta(base_url: str, before: tuple[float, float]) -> float:
    count, total = micro_batch_totals(base_url)
    return (total - before[1]) / max(count - before[0], 1)


def write_report(out: Path, runs: list[Run], bare: Bare, words, load_avg, store="SQLite", workers=1) -> None:
    from grader.settings import get_settings

    settings = get_settings()
    rows = "\n".join(
        f"| {r.clients} | {r.requests} | {r.percentile(50):.1f} | {r.percentile(99):.1f} | {r.rps:.1f} "
        f"| {r.mean_batch:.1f} | {r.server_cpu_ms:.1f} | {r.client_cpu_ms:.1f} |"
        for r in runs
    )
    one, top = min(runs, key=lambda r: r.clients), max(runs, key=lambda r: r.clients)
    latency_ratio = one.percentile(50) / bare.single_ms
    text = f"""# API load benchmark

`python benchmarks/load.py {' '.join(sys.argv[1:])}` — a real `grader serve` on 127.0.0.1, `POST /v1/grade` with a
stored 5-key-point rubric and distinct ~{words:.0f}-word answers ({bare.spans_per_answer} spans each), every result
stored in {store}; {workers} server process(es); backend **{settings.backend}**, span vectors
**{settings.span_vectors}**. {os.cpu_count()} CPU cores, no GPU; the load generator runs on the same cores
(1-minute load average at the end: {load_avg:.1f}{"; other work shared the cores, so these numbers are pessimistic" if load_avg > (os.cpu_count() or 1) + 0.5 else ""}).

| clients | requests | p50 latency (ms) | p99 latency (ms) | requests/s | mean micro-batch | server CPU ms / request | load generator CPU ms / request |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

CPU per request (all threads; the server's from /proc, the load generator's its own process time) against the
bare model's CPU per answer reading the same answers in the lanes ({bare.cpu_ms:.1f} ms): at {top.clients} clients the
server spends **{top.server_cpu_ms / bare.cpu_ms:.2f}x** the bare model's CPU per answer, and the load generator, on the same
cores, another {top.client_cpu_ms / bare.cpu_ms:.2f}x.

The bare model on the same answers, in the benchmark process after the server stopped (same backend, the
server's settings: {bare.lanes}). Each pass runs in one of the encoder's lanes, as the server's do; the
"every thread" rows are the same model outside lanes, as grading ran before lanes (one answer after another,
each pass on every thread torch has):

| bare model | value | API / bare |
|---|---:|---:|
| one forward pass over one whole answer, median | {bare.single_ms:.1f} ms | {one.clients}-client p50: **{latency_ratio:.2f}x** (target <= 1.5x) |
| the same pass on every thread, median | {bare.single_all_ms:.1f} ms | {one.percentile(50) / bare.single_all_ms:.2f}x |
| one unpadded pass per answer (grading's rule), in the lanes | {bare.answers_per_s:.1f} answers/s | {top.clients}-client throughput: **{top.rps / bare.answers_per_s:.2f}x** (target >= 0.8x) |
| one pass per answer, one after another on every thread | {bare.sequential_per_s:.1f} answers/s | {top.rps / bare.sequential_per_s:.2f}x |
| padded batches of 64 answers (torch only) | {bare.padded_per_s:.1f} answers/s | {top.rps / bare.padded_per_s:.2f}x |
| every span text of separate mode, one pass each | {bare.spans_per_s:.1f} answers/s | {top.rps / bare.spans_per_s:.2f}x |
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
