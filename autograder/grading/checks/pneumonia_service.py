"""Checks of the pneumonia service assignment: the exported model at the student's threshold, and
the student's service, run inside the sandbox and probed from here.

Metrics (`pneumonia_recall`, `pneumonia_precision`): P(PNEUMONIA) = softmax of the exported model's
logits; PNEUMONIA when it reaches the exported `threshold` (reported.json). Recall, precision, F1,
ROC AUC and the confusion matrix on the hidden split; the part's score from `bands` per profile.

The service (`pneumonia_service_*`): the grader starts `uvicorn app:app --uds service.sock` in the
attempt's work folder the way the session ran the notebook: under run_sandboxed (no network), or,
in a session run with --unsandboxed, under run_limited alone; behind a small supervisor that stops
uvicorn when the grader drops a stop file. From
here it connects to that socket through an O_PATH descriptor of the socket itself (a link the
student made is refused, never followed), waits for /health, sends hidden images and bad inputs
with fake patient names and ids, stops the service, seals the folder (sockets and links removed)
and reads the audit log (path in $AUDIT_LOG) without following links. Every step has a deadline;
a service that never starts, hangs or crashes fails the parts it did not earn, with the reason.
The run happens once per evaluation and is shared by the service parts. A failure on the grader's
side (no sandbox on this runner, the hidden images unreadable, a bug) is a grader error, never the
student's zero. Latency is scored against the reference service measured on the same runner by
the reference run (`ctx.reference["service"]`, see grading/timing.py).
"""

from __future__ import annotations

import base64
import json
import os
import platform
import secrets
import stat
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from . import CheckResult, register
from .context import EvalContext

SOCKET, AUDIT, APP = "service.sock", "audit.jsonl", "app.py"
MAX_AUDIT_BYTES = 4 * 2**20
SIZE_LIMIT = 5 * 2**20          # the payload limit the notebook states; the grader sends more than this
_RUNS: dict = {}
_METRICS: dict = {}

# Runs inside the sandbox, before any student code: start uvicorn, stop it when the grader says so.
SUPERVISOR = r"""
import os, subprocess, sys, time
stop = sys.argv[1]
p = subprocess.Popen([sys.executable, "-m", "uvicorn", "app:app", "--uds", "service.sock", "--app-dir", ".",
                      "--log-level", "warning", "--no-access-log"])
while p.poll() is None and not os.path.exists(stop):
    time.sleep(0.1)
if p.poll() is None:
    p.terminate()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
print("service exit", p.returncode, flush=True)
"""

FIRST = ["Alice", "Bernard", "Chiara", "Dmitri", "Esther", "Farid", "Greta", "Hiroshi", "Ingrid", "Jamal"]
LAST = ["Okafor", "Lindqvist", "Moreau", "Petrov", "Sandoval", "Nakamura", "Fitzgerald", "Haddad"]


def _threshold(ctx: EvalContext) -> float:
    value = ctx.json("reported.json").get("threshold")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= float(value) <= 1:
        raise ValueError(f"reported.json has no threshold between 0 and 1 (got {value!r})")
    return float(value)


def _probabilities(module, images):
    """P(pneumonia) per image."""
    from ..efficiency import _probabilities as class_probabilities

    return class_probabilities(module, images)[:, 1]


# ---- metrics at the threshold -----------------------------------------------------------------

def metrics(ctx: EvalContext) -> dict:
    key = str(ctx.artifacts)
    if key not in _METRICS:
        from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score

        from ..evaluate import _plot_confusion

        threshold = _threshold(ctx)
        test = ctx.test_split
        p = _probabilities(ctx.module(), test.images).numpy()
        y, pred = test.labels.numpy(), (p >= threshold).astype(int)
        m = {"threshold": threshold, "recall": float(recall_score(y, pred, zero_division=0)),
             "precision": float(precision_score(y, pred, zero_division=0)),
             "f1": float(f1_score(y, pred, zero_division=0)), "roc_auc": float(roc_auc_score(y, p)),
             "confusion_matrix": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
             "classes": list(test.classes), "n": int(len(y))}
        _plot_confusion(m, Path(ctx.out) / "confusion_matrix.png")
        _METRICS.clear()
        _METRICS[key] = m
    return _METRICS[key]


def _band(value: float, bands: list) -> float:
    return max([float(b["score"]) for b in bands if value >= float(b["at_least"])], default=0.0)


def _metric_check(ctx: EvalContext, options: dict, name: str) -> CheckResult:
    try:
        m = metrics(ctx)
    except (FileNotFoundError, ValueError) as exc:
        return CheckResult(0.0, f"the exported model could not be scored: {exc}")
    score = _band(m[name], options["bands"][ctx.profile])
    text = (f"at your threshold {m['threshold']:.3f}, PNEUMONIA {name} on the hidden split is {m[name]:.3f} "
            f"(recall {m['recall']:.3f}, precision {m['precision']:.3f}, F1 {m['f1']:.3f}, ROC AUC {m['roc_auc']:.3f}, "
            f"{m['n']} images)")
    return CheckResult(score, text, figures={"confusion_matrix": str(Path(ctx.out) / "confusion_matrix.png")},
                       details=m)


@register("pneumonia_recall")
def pneumonia_recall(ctx: EvalContext, options: dict) -> CheckResult:
    return _metric_check(ctx, options, "recall")


@register("pneumonia_precision")
def pneumonia_precision(ctx: EvalContext, options: dict) -> CheckResult:
    return _metric_check(ctx, options, "precision")


# ---- the service ------------------------------------------------------------------------------

def _service_env(workdir: Path, profile: str) -> dict:
    from ..cpu_env import TORCH_CPU_ENV

    return {**TORCH_CPU_ENV, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1", "MODEL_DIR": str(workdir / "artifacts"), "AUDIT_LOG": str(workdir / AUDIT),
            "PROFILE": profile, "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin"}


def _remove(dir_fd: int, name: str) -> None:
    from ...sandbox.tree import remove_at

    try:
        remove_at(dir_fd, name)
    except OSError:
        pass


def _connect(dir_fd: int):
    """An httpx client on the service's socket, reached through a descriptor of the socket file
    itself (O_PATH, no link followed), or None while there is no socket."""
    import httpx

    try:
        fd = os.open(SOCKET, os.O_PATH | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return None, None
    if not stat.S_ISSOCK(os.fstat(fd).st_mode):
        os.close(fd)
        return None, None
    # a connection per request: a server that drops one after an error must not cost the next request
    return httpx.Client(transport=httpx.HTTPTransport(uds=f"/proc/self/fd/{fd}"), base_url="http://service",
                        headers={"connection": "close"}), fd


def _patient(rng) -> dict:
    return {"patient_name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "patient_id": f"MRN-{rng.randrange(10**7):07d}"}


def _bad_inputs(rng) -> list[tuple[str, dict]]:
    """(what, request kwargs) of inputs the service must refuse with a 4xx."""
    text = base64.b64encode(b"this is a discharge letter, not an X-ray").decode()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(300)).decode()
    return [
        ("a non-image", {"json": {"image": text, **_patient(rng)}}),
        ("a bad base64 string", {"json": {"image": png[:101] + "!!", **_patient(rng)}}),
        ("a truncated PNG", {"json": {"image": png[:40], **_patient(rng)}}),
        ("a missing image field", {"json": _patient(rng)}),
        ("an empty body", {"content": b"", "headers": {"content-type": "application/json"}}),
        ("a wrong content type", {"content": b"image=abc", "headers": {"content-type": "text/plain"}}),
        ("a payload over the size limit", {"json": {"image": "A" * (SIZE_LIMIT + 4096), **_patient(rng)}}),
    ]


def _probe(client, images: list[tuple[bytes, int]], options: dict, deadline: float) -> dict:
    rng = secrets.SystemRandom()
    timeout = float(options.get("request_timeout_s", 10))
    sent: list[dict] = []

    def send(kind: str, what: str, kwargs: dict, sha: str | None = None) -> dict:
        record = {"kind": kind, "what": what, "sha256": sha,
                  "patient": {k: v for k, v in (kwargs.get("json") or {}).items() if k.startswith("patient")}}
        if time.monotonic() > deadline:
            return record | {"error": "the check's deadline passed"}
        start = time.perf_counter()
        try:
            r = client.post("/predict", timeout=timeout, **kwargs)
            record.update(status=r.status_code, latency_s=time.perf_counter() - start)
            try:
                record["body"] = r.json() if len(r.content) < 65536 else None
            except ValueError:
                record["body"] = None
        except Exception as exc:   # a hang (timeout) or a dropped connection
            record["error"] = f"{type(exc).__name__}"
        return record

    import hashlib

    goods = []
    for data, _ in images:
        kwargs = {"json": {"image": base64.b64encode(data).decode(), **_patient(rng)}}
        goods.append(("good", "an image", kwargs, hashlib.sha256(data).hexdigest()))
    sent.append(send(*goods[0]))   # alone: the service's first inference (lazy set-up) is one request's tail
    with ThreadPoolExecutor(max_workers=int(options.get("concurrency", 4))) as pool:
        sent += list(pool.map(lambda g: send(*g), goods[1:]))
    sent += [send("bad", what, kwargs) for what, kwargs in _bad_inputs(rng)]
    try:
        alive = client.get("/health", timeout=timeout).status_code == 200
    except Exception:
        alive = False
    return {"sent": sent, "alive_after": alive}


def _read_audit(dir_fd: int) -> tuple[list, str | None]:
    try:
        fd = os.open(AUDIT, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return [], f"no audit log was written at $AUDIT_LOG ({AUDIT} in the work folder)"
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return [], "the audit log is not a regular file"
        data = f.read(MAX_AUDIT_BYTES + 1)
    if len(data) > MAX_AUDIT_BYTES:
        return [], f"the audit log is larger than {MAX_AUDIT_BYTES // 2**20} MB"
    return data.decode("utf-8", "replace").splitlines(), None


def _run_service(ctx: EvalContext, options: dict) -> dict:
    """Start the service (sandboxed or not, as the session), probe it, stop it; plain data about
    what happened. `grader_error` in it: the grader's side failed; `error`: the student's."""
    from ...sandbox import Limits, SandboxSpec, run_limited, run_sandboxed
    from ...datasets.pneumonia import hidden_images, preprocess
    from ..execute import PACKAGE_DIR, seal

    workdir = Path(ctx.artifacts).parent.resolve()
    run: dict = {"started": False, "sandboxed": ctx.sandboxed}
    import torch

    try:
        images = hidden_images(ctx.profile, ctx.hidden_root, ctx.secret, int(options.get("images", 48)))
        batch = torch.cat([preprocess(d, ctx.profile) for d, _ in images])
    except Exception as exc:
        return run | {"grader_error": f"the hidden images could not be read: {type(exc).__name__}: {str(exc)[:200]}"}
    try:   # the model is vetted and loaded, and the expected labels computed, before the student's code runs again
        threshold = _threshold(ctx)
        expected = _probabilities(ctx.module(), batch) >= threshold
    except Exception as exc:             # the student's export: their part, no service run
        return run | {"error": f"the exported model or threshold could not be used: {type(exc).__name__}: "
                               f"{str(exc)[:200]}"}
    run["expected"] = ["PNEUMONIA" if e else "NORMAL" for e in expected.tolist()]
    run["threshold"] = threshold
    dir_fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name in (SOCKET, AUDIT):     # whatever the notebook left there is not the service's
            _remove(dir_fd, name)
        try:
            os.lstat(workdir / APP)
        except FileNotFoundError:
            return run | {"error": f"the notebook wrote no {APP} in its work folder"}
        total = float(options.get("total_timeout_s", 180))
        stop = f".stop-{secrets.token_hex(8)}"
        env = _service_env(workdir, ctx.profile)
        argv = [sys.executable, "-P", "-c", SUPERVISOR, stop]
        limits = Limits(wall_seconds=total, memory_bytes=4 * 2**30, max_processes=64)
        box: dict = {}

        def serve():
            try:
                if ctx.sandboxed:
                    spec = SandboxSpec(workdir=workdir, readonly=(PACKAGE_DIR,), env=env)
                    box["outcome"] = run_sandboxed(argv, spec, limits)
                else:   # as the session ran the notebook: limits, no isolation
                    box["outcome"] = run_limited(argv, limits, cwd=workdir, env={**os.environ, **env}, disk_root=workdir)
            except Exception as exc:
                box["error"] = f"{type(exc).__name__}: {exc}"

        thread = threading.Thread(target=serve, daemon=True)
        start = time.monotonic()
        deadline = start + total - 10
        thread.start()
        client, sock_fd = None, None
        try:
            health_by = start + float(options.get("start_timeout_s", 60))
            while time.monotonic() < min(health_by, deadline) and thread.is_alive():
                if client is None:
                    client, sock_fd = _connect(dir_fd)
                if client is not None:
                    try:
                        if client.get("/health", timeout=2).status_code == 200:
                            run["started"] = True
                            run["start_s"] = round(time.monotonic() - start, 2)
                            break
                    except Exception:
                        pass
                time.sleep(0.2)
            if run["started"]:
                run.update(_probe(client, images, options, deadline))
        finally:
            if client is not None:
                client.close()
                os.close(sock_fd)
            try:
                os.close(os.open(stop, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd))
            except OSError:
                pass
            thread.join(total + 30)
        outcome = box.get("outcome")
        if box.get("error"):              # the grader's side (no bwrap on this runner, ...): never the student's
            where = "the sandbox" if ctx.sandboxed else "the grader"
            run["grader_error"] = f"{where} could not start the service on runner {platform.node()}: {box['error'][:300]}"
        elif outcome is not None:
            run["stderr"] = outcome.stderr[-1500:]
            run["killed"] = outcome.killed_reason
        seal(workdir)                     # the socket and any link the service left go
        run["audit"], run["audit_error"] = _read_audit(dir_fd)
        _remove(dir_fd, stop)
    finally:
        os.close(dir_fd)
    return run


def service_run(ctx: EvalContext, options: dict) -> dict:
    key = str(ctx.artifacts)
    if key not in _RUNS:
        _RUNS.clear()
        try:   # run once per evaluation, whatever happens: every service part reads the same run
            _RUNS[key] = _run_service(ctx, options)
        except Exception as exc:   # a bug of the grader's: not the student's zero
            _RUNS[key] = {"started": False,
                          "grader_error": f"the service could not be checked: {type(exc).__name__}: {str(exc)[:200]}"}
    return _RUNS[key]


def _not_started(run: dict) -> str:
    if run.get("grader_error"):
        return run["grader_error"]
    if run.get("error"):
        return run["error"]
    why = f" (stopped by the sandbox: {run['killed']})" if run.get("killed") else ""
    tail = (run.get("stderr") or "").strip().splitlines()[-1:]
    last = f"; its last output: {tail[0][:200]}" if tail else ""
    return f"the service never answered GET /health{why}{last}"


def _check(name: str):
    """Register a service check: fn(run, options, ctx) -> (score, sentence, details) after the shared run."""
    def decorate(fn):
        @register(name)
        def check(ctx: EvalContext, options: dict) -> CheckResult:
            run = service_run(ctx, options)
            if run.get("grader_error"):
                return CheckResult(0.0, run["grader_error"], needs_review=True, grader_error=run["grader_error"])
            if not run.get("started"):
                return CheckResult(0.0, _not_started(run))
            score, text, details = fn(run, options, ctx)
            return CheckResult(score, text, details=details)
        return check
    return decorate


@_check("pneumonia_service_health")
def _health(run: dict, options: dict, ctx: EvalContext):
    return 1.0, f"GET /health answered after {run.get('start_s')} s", {"start_s": run.get("start_s")}


def latency_ms(run: dict) -> dict | None:
    """p50 and p95 (nearest rank) of /predict over the hidden images answered with 200, in ms."""
    answered = sorted(s["latency_s"] for s in run["sent"] if s["kind"] == "good" and s.get("status") == 200)
    if not answered:
        return None
    p50, p95 = answered[len(answered) // 2], answered[min(len(answered) - 1, int(0.95 * len(answered)))]
    return {"p50_ms": round(p50 * 1000, 1), "p95_ms": round(p95 * 1000, 1), "n": len(answered)}


def _ratio_score(ratio: float, bands: list) -> float:
    return max([float(b["score"]) for b in bands if ratio <= float(b["at_most"])], default=0.0)


def score_latency(measured: dict, reference: dict | None, bands: list) -> tuple[float, str, dict]:
    """Each of p50 and p95 over the reference service's on this runner, scored in `bands`
    (ratio at most ...); the part is the mean of the two. No reference (the reference run itself,
    which is what the others are compared with): full, and said so."""
    text = f"latency of /predict: p50 {measured['p50_ms']:.0f} ms, p95 {measured['p95_ms']:.0f} ms"
    if not reference:
        return 1.0, text + " (no reference service measured on this runner: not compared)", measured
    ratios = {k: measured[k] / max(float(reference[k]), 1e-3) for k in ("p50_ms", "p95_ms")}
    score = sum(_ratio_score(r, bands) for r in ratios.values()) / len(ratios)
    text += (f": p50 {ratios['p50_ms']:.1f}x and p95 {ratios['p95_ms']:.1f}x the reference service's "
             f"({reference['p50_ms']:.0f} ms, {reference['p95_ms']:.0f} ms) on this runner")
    return score, text, measured | {"reference": dict(reference), "ratio_p50": round(ratios["p50_ms"], 3),
                                    "ratio_p95": round(ratios["p95_ms"], 3)}


@_check("pneumonia_service_latency")
def _latency(run: dict, options: dict, ctx: EvalContext):
    measured = latency_ms(run)
    if measured is None:
        return 0.0, "no hidden image got an answer with status 200, so there is no latency to compare", {}
    return score_latency(measured, ctx.reference.get("service"), options["latency_bands"][ctx.profile])


@_check("pneumonia_service_predictions")
def _predictions(run: dict, options: dict, ctx: EvalContext):
    goods = [s for s in run["sent"] if s["kind"] == "good"]
    labels = [(s.get("body") or {}).get("label") if s.get("status") == 200 and isinstance(s.get("body"), dict) else None
              for s in goods]
    agree = sum(a == b for a, b in zip(labels, run["expected"]))
    share = agree / max(len(goods), 1)
    full = float(options.get("agreement", 0.98))
    text = (f"the service's labels agree with your exported model at your threshold {run['threshold']:.3f} on "
            f"{agree} of {len(goods)} hidden images")
    failed = sum(label is None for label in labels)
    if failed:
        text += f" ({failed} requests got no answer with a label)"
    missed = sum(a == "NORMAL" and b == "PNEUMONIA" for a, b in zip(labels, run["expected"]))
    extra = sum(a == "PNEUMONIA" and b == "NORMAL" for a, b in zip(labels, run["expected"]))
    wrong = ([f"NORMAL on {missed} that your model at that threshold flags as PNEUMONIA"] if missed else []) + \
        ([f"PNEUMONIA on {extra} that it does not flag"] if extra else [])
    if wrong:   # mostly one direction: the service applies another threshold than the exported one
        text += f"; the service answered {' and '.join(wrong)}: does it apply the exported threshold?"
    return (1.0 if share >= full else share / 2), text, {"agreement": share, "missed": missed, "extra": extra}


@_check("pneumonia_service_bad_input")
def _bad_input(run: dict, options: dict, ctx: EvalContext):
    def problem(s: dict) -> str | None:
        if "status" not in s:
            return f"{s['what']} got no answer ({s.get('error')})"
        if not 400 <= s["status"] < 500:
            return f"{s['what']} got {s['status']}"
        return None if isinstance(s.get("body"), dict) else f"{s['what']} got {s['status']} without a JSON error"

    bad = [s for s in run["sent"] if s["kind"] == "bad"]
    wrong = [p for p in map(problem, bad) if p]
    alive = bool(run.get("alive_after"))
    score = (len(bad) - len(wrong)) / max(len(bad), 1) * (1.0 if alive else 0.5)
    text = f"{len(bad) - len(wrong)} of {len(bad)} bad inputs got a 4xx with a JSON error"
    text += f" ({'; '.join(wrong)})" if wrong else ""
    text += "; the service was alive afterwards" if alive else "; the service was not alive afterwards"
    return score, text, {"wrong": wrong}


def _utc(value) -> bool:
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False
    return stamp.utcoffset() == timedelta(0)


@_check("pneumonia_service_audit")
def _audit(run: dict, options: dict, ctx: EvalContext):
    lines, error = run["audit"], run.get("audit_error")
    if error:
        return 0.0, error, {}
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append(None)
    answered = [s for s in run["sent"] if s.get("kind") == "good" and s.get("status") == 200
                and isinstance(s.get("body"), dict)]
    requests = [s for s in run["sent"] if "status" in s]
    by_id = {r.get("request_id"): r for r in records if isinstance(r, dict)}
    problems = []
    if len(lines) != len(requests):
        problems.append(f"{len(lines)} lines for {len(requests)} /predict requests")
    malformed = sum(not isinstance(r, dict) or not _utc(r.get("timestamp")) or not r.get("request_id") for r in records)
    if malformed:
        problems.append(f"{malformed} lines are not JSON with a UTC timestamp and a request id")
    mismatched = 0
    for s in answered:
        r = by_id.get(s["body"].get("request_id"))
        if not r or r.get("image_sha256") != s["sha256"] or r.get("prediction") != s["body"].get("label") \
                or not isinstance(r.get("confidence"), (int, float)):
            mismatched += 1
    if mismatched:
        problems.append(f"{mismatched} of {len(answered)} answered predictions have no line with their request id, "
                        f"image SHA-256, prediction and confidence")
    no_latency = sum(isinstance(r, dict) and not isinstance(r.get("latency_ms"), (int, float)) for r in records)
    if no_latency:
        problems.append(f"{no_latency} lines record no latency_ms")
    score = max(0.0, 1 - 0.35 * len(problems))
    text = (f"the audit log has {len(lines)} lines for {len(requests)} requests" +
            (": " + "; ".join(problems) if problems else ", one well-formed line per request with its timestamp, "
             "request id, image SHA-256, prediction, confidence and latency"))
    return score, text, {"problems": problems}


@_check("pneumonia_service_privacy")
def _privacy(run: dict, options: dict, ctx: EvalContext):
    lines, error = run["audit"], run.get("audit_error")
    if error:
        return 0.0, error, {}
    text = "\n".join(lines).casefold()
    leaked = set()
    for s in run["sent"]:
        for key, value in s["patient"].items():
            for token in [value] + (value.split() if key == "patient_name" else []):
                if token.casefold() in text:
                    leaked.add(key)
    if leaked:
        return 0.0, (f"the audit log contains patient identifiers ({', '.join(sorted(leaked))} of the requests): "
                     "log the request id and the image hash, never who the patient is"), {"leaked": sorted(leaked)}
    return 1.0, "no patient name or id that was sent appears in the audit log", {}
