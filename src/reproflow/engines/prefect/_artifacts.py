"""Prefect UI artifacts for a recorded flow run: a Markdown summary, a task table and a link.

Artifacts stay small (the server drops creation events above about 1.5 MB): the summary and the
table are capped, and the link points at the full record in the store.

At the end of a flow run they are published on a background thread (``end_in_background``):
the three API calls wait 50-250 ms each on a server still ingesting the run's task events, which
was a fifth of a 100-task flow's time. The thread is not a daemon, so the interpreter waits for
it before it shuts down (``atexit`` handlers, which stop Prefect's ephemeral server, run after
non-daemon threads are joined); it runs in a copy of the hook's context (Prefect's settings are
context variables); ``wait_for_artifacts()`` waits for it. ``REPROFLOW_ARTIFACTS=sync`` publishes
before the flow returns instead, ``off`` not at all (``reproflow runs publish RUN_ID`` still can).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from ... import errors
from ...recorder._dag import upstream_labels
from ...records import Environment, Run
from ...store import Store
from ... import _forksafe

log = logging.getLogger("reproflow")

MAX_TABLE_ROWS = 500
MAX_MARKDOWN = 200_000

#: ``REPROFLOW_ARTIFACTS``: when a flow run's artifacts are published.
PUBLISH_MODES = ("background", "sync", "off")


def _short(digest: str | None, n: int = 12) -> str:
    if not digest:
        return ""
    return digest.split(":", 1)[-1][:n]


def _size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def run_location(store: Store, run_id: str) -> str:
    """A URL for the run's folder in the store (``file://`` for local stores)."""
    path = store.run_dir(run_id)
    if store._local:
        return "file://" + path
    protocol = store.fs.protocol[0] if isinstance(store.fs.protocol, (tuple, list)) else store.fs.protocol
    return f"{protocol}://{path}"


def summary_markdown(store: Store, run: Run, env: Environment | None = None) -> str:
    """The run's provenance as Markdown: environment, hardware, git, data in and out."""
    ctx = run.context
    rec = run.record
    lines = [f"# reproflow provenance: {rec.flow_name}", ""]
    lines += [
        f"- **Run**: `{rec.run_id}`" + (f" (replay of `{rec.replay_of}`)" if rec.replay_of else ""),
        f"- **Status**: {run.status}",
        f"- **Store**: `{store.display_url}`",
        f"- **Entrypoint**: `{rec.entrypoint or '?'}`",
        f"- **Task runs**: {len(run.final_tasks())} ({len(run.tasks)} attempts)",
        *_reused_lines(run),
        "",
    ]
    if ctx is not None:
        lines += ["## Environment", ""]
        lines.append(f"- Python {ctx.python_version}")
        if env is not None:
            lines.append(f"- {env.platform.system} {env.platform.release} ({env.platform.machine}), {env.platform.distro or ''} {env.platform.libc or ''}".rstrip())
            lines.append(f"- {len(env.distributions)} distributions installed")
            redacted = sorted(k for k, v in env.env_vars.items() if v.redacted)
            if redacted:
                lines.append(f"- {len(redacted)} environment variables redacted: {', '.join(redacted[:20])}")
        lines += ["", "## Hardware", ""]
        hw = ctx.hardware
        lines.append(f"- CPU: {hw.cpu.model or '?'} ({hw.cpu.logical_cores or '?'} logical cores)")
        lines.append(f"- Memory: {_size(hw.memory_total_bytes)}")
        if hw.gpus:
            for g in hw.gpus:
                lines.append(f"- GPU {g.index}: {g.name} ({_size(g.memory_total_bytes)}), driver {hw.gpu_driver}, CUDA {hw.cuda_driver_version}")
        else:
            lines.append(f"- GPU: none ({hw.gpu_absent_reason or 'not detected'})")
        lines += ["", "## Git", ""]
        git = ctx.git
        if git.available:
            lines.append(f"- Commit `{git.commit}` on `{git.branch or 'detached'}`" + (" (**dirty**)" if git.dirty else " (clean)"))
            if git.remote_url:
                lines.append(f"- Remote: `{git.remote_url}`")
            if git.tags:
                lines.append(f"- Tags: {', '.join(git.tags)}")
            if git.untracked:
                lines.append(f"- {len(git.untracked)} untracked files")
        else:
            lines.append(f"- not recorded: {git.absent_reason}")
    data_in: dict[str, Any] = {}
    data_out: dict[str, Any] = {}
    for t in run.final_tasks():
        for ref in t.inputs:
            data_in.setdefault(ref.uri, ref)
        for ref in t.outputs:
            data_out[ref.uri] = ref
    for title, refs in (("Data in", data_in), ("Data out", data_out)):
        lines += ["", f"## {title}", ""]
        if not refs:
            lines.append("- none")
            continue
        lines += ["| URI | SHA-256 | Size |", "|---|---|---|"]
        for ref in list(refs.values())[:MAX_TABLE_ROWS]:
            lines.append(f"| `{ref.uri}` | `{_short(ref.sha256, 16)}` | {_size(ref.size)} |")
    findings = [f for t in run.final_tasks() for f in t.findings]
    if findings:
        lines += ["", "## Reproducibility findings", ""]
        seen = set()
        for f in findings:
            key = (f.code, f.path, f.line)
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"- `{f.code}` {f.message} ({f.path}:{f.line})")
    text = "\n".join(lines) + "\n"
    return text if len(text) <= MAX_MARKDOWN else text[: MAX_MARKDOWN - 40] + "\n\n(truncated; see the store)\n"


def _reused_lines(run: Run) -> list[str]:
    """How many task results came from reproflow.CONTENT's cache, and from which runs."""
    reused = [t for t in run.final_tasks() if t.state == "CACHED" and t.cache is not None]
    if not reused:
        return []
    sources: dict[str, int] = {}
    for t in reused:
        src = t.cache.reused_run_id if t.cache is not None else None
        sources[src or "unknown"] = sources.get(src or "unknown", 0) + 1
    where = ", ".join(f"{n} from `{src}`" for src, n in sorted(sources.items()))
    return [f"- **Reused** (reproflow.CONTENT cache): {len(reused)} of {len(run.final_tasks())} task runs; {where}"]


def task_table(run: Run) -> list[dict[str, Any]]:
    """One row per task run (last attempt), JSON-safe, for a Prefect table artifact."""
    up = upstream_labels(run)
    rows = []
    for t in run.final_tasks()[:MAX_TABLE_ROWS]:
        rows.append(
            {
                "task": t.task_name,
                "map_index": t.map_index,
                "task_run_id": t.task_run_id,
                "state": t.state,
                "attempts": t.attempt,
                "duration_s": round(t.duration_s, 4),
                # by name and map index: time-ordered ids share their first characters
                "upstream": ", ".join(up.get(t.task_run_id, [])),
                "inputs": ", ".join(f"{r.param}={_short(r.sha256)}" for r in t.inputs),
                "outputs": ", ".join(f"{r.param}={_short(r.sha256)}" for r in t.outputs),
                "result_hash": _short(t.result_hash),
                "params_hash": _short(t.parameters_hash),
            }
        )
    return rows


#: Scores a run for the summary artifact: ``(run, environment, store) -> Markdown lines``. The
#: scoring lives above the engines (``reproflow.analysis``), so the layer that wires the package
#: together sets it (``reproflow.__init__`` when the Prefect adapter is first used); None leaves
#: the score out of the summary.
Scorer = Callable[[Run, Environment, Store], list[str]]
summary_scorer: Scorer | None = None


def publish_run_artifacts(store: Store, run_id: str, *, client: Any = None, report: bool | Scorer = False,
                          httpx_settings: dict[str, Any] | None = None) -> list[str]:
    """Create the three artifacts on the Prefect flow run ``run_id`` (the provenance summary, with
    ``report`` the reproducibility score in it, the task table and the link), from one load of
    the run. Returns their ids. ``report`` is a :data:`Scorer`, or True for :data:`summary_scorer`.

    Without ``client``, a sync client from ``get_client(httpx_settings=...)`` is used: the one in
    the current client context when ``httpx_settings`` is None (Prefect's rule), else a new one.

    Raises:
        PrefectAPIError: the API could not be reached or refused the artifacts.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    run = store.load_run(run_id)
    env = None
    if run.context is not None:
        try:
            env = store.get_model_blob(run.context.environment_blob, Environment)
        except Exception:  # noqa: BLE001 - a summary without the environment still helps
            env = None
    flow_run_id = uuid.UUID(run_id)
    artifacts = [
        ArtifactCreate(
            type="markdown",
            key="reproflow-provenance",
            description="reproflow: environment, hardware, git and data of this run",
            flow_run_id=flow_run_id,
            data=summary_markdown(store, run, env),
        ),
        ArtifactCreate(
            type="table",
            key="reproflow-tasks",
            description="reproflow: provenance of each task run",
            flow_run_id=flow_run_id,
            data=json.dumps(task_table(run)),
        ),
        ArtifactCreate(
            # Prefect's own link artifacts are Markdown links (`create_link_artifact`): the UI has
            # no renderer for a "link" type and showed it as "unknown" with the raw Markdown.
            type="markdown",
            key="reproflow-record",
            description="reproflow: where the full record is stored",
            flow_run_id=flow_run_id,
            data=f"[reproflow record of run {run_id}]({run_location(store, run_id)})",
        ),
    ]
    scorer = summary_scorer if report is True else (report or None)
    if scorer is not None and env is not None:
        # The scored checklist goes into the summary (one API call less per flow run: each costs
        # 50-200 ms on a server still busy with the run's events); `reproflow report --publish`
        # attaches the full report as an artifact of its own.
        lines = scorer(run, env, store)
        artifacts[0].data = str(artifacts[0].data) + "\n".join(lines) + "\n"
    if client is not None:
        return upsert_artifacts(client, flow_run_id, artifacts)
    try:
        with get_client(sync_client=True, httpx_settings=httpx_settings) as own:
            return upsert_artifacts(own, flow_run_id, artifacts)
    except Exception as exc:  # noqa: BLE001 - any client failure: one line naming the API
        raise _api_error(exc) from exc


def upsert_artifacts(client: Any, flow_run_id: uuid.UUID, artifacts: list[Any]) -> list[str]:
    """Create each artifact on the flow run, or update the one already there with its key, so
    publishing again (``reproflow runs publish``) never leaves two of them. Returns their ids.

    The REST calls are made here, with the caller's client, and the ``prefect.artifact.created``
    / ``.updated`` events Prefect's client would emit go in one ``POST /events`` on that same
    client, not through Prefect's events worker: this runs on the publisher thread after the
    flow returns, possibly while the interpreter shuts down, when Prefect has already drained
    its events worker and starting a new one fails ("can't register atexit after shutdown").
    """
    from prefect.client.schemas.actions import ArtifactUpdate

    keys = [a.key for a in artifacts]
    found = client.request("POST", "/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}, "key": {"any_": keys}},
        "sort": "CREATED_DESC",
    })
    found.raise_for_status()
    existing: dict[str, list[dict[str, Any]]] = {}
    for row in found.json():
        existing.setdefault(row["key"], []).append(row)  # newest first
    ids: list[str] = []
    events: list[dict[str, Any]] = []
    for art in artifacts:
        rows = existing.get(art.key, [])
        if rows:
            artifact_id = str(rows[0]["id"])
            update = ArtifactUpdate(data=art.data, description=art.description)
            resp = client.request("PATCH", "/artifacts/{id}", path_params={"id": artifact_id},
                                  json=update.model_dump(mode="json", exclude_unset=True))
            resp.raise_for_status()
            for extra in rows[1:]:  # duplicates left by versions that always created
                client.request("DELETE", "/artifacts/{id}", path_params={"id": str(extra["id"])})
            events.append(_artifact_event("prefect.artifact.updated", artifact_id, art, flow_run_id))
        else:
            resp = client.request("POST", "/artifacts/", json=art.model_dump(mode="json", exclude_unset=True))
            resp.raise_for_status()
            artifact_id = str(resp.json()["id"])
            events.append(_artifact_event("prefect.artifact.created", artifact_id, art, flow_run_id))
        ids.append(artifact_id)
    _send_events(client, events)
    return ids


def _artifact_event(name: str, artifact_id: str, art: Any, flow_run_id: uuid.UUID) -> dict[str, Any]:
    """The event Prefect's ``create_artifact`` / ``update_artifact`` emit, as JSON."""
    from prefect.events.schemas.events import Event

    return Event(
        event=name,
        resource={"prefect.resource.id": f"prefect.artifact.{artifact_id}", "prefect.resource.name": art.key},
        related=[{"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}],
        payload={"key": art.key, "type": art.type, "description": art.description},
    ).model_dump(mode="json")


def _send_events(client: Any, events: list[dict[str, Any]]) -> None:
    """POST the artifacts' events; a server that refuses them costs the event feed, not the
    artifacts, so a failure is a debug line."""
    from prefect.events.worker import should_emit_events

    if not events or not should_emit_events():
        return
    try:
        client.request("POST", "/events", json=events).raise_for_status()
    except Exception as exc:  # noqa: BLE001 - the artifacts are there; the feed is secondary
        log.debug("reproflow: could not send the artifact events: %s", exc)


def _api_error(exc: BaseException) -> errors.PrefectAPIError:
    from prefect.settings import PREFECT_API_URL

    return errors.PrefectAPIError.from_exc(PREFECT_API_URL.value(), exc)


def publish_mode() -> str:
    """``REPROFLOW_ARTIFACTS`` (``background`` by default, ``sync`` or ``off``)."""
    mode = os.environ.get("REPROFLOW_ARTIFACTS", "").strip().lower() or "background"
    if mode not in PUBLISH_MODES:
        log.warning("reproflow: REPROFLOW_ARTIFACTS=%r is not one of %s; publishing in the background", mode, ", ".join(PUBLISH_MODES))
        return "background"
    return mode


class _Publisher:
    """One non-daemon thread that runs queued jobs and ends when the queue is empty.

    Ending when idle matters: a non-daemon thread that waited for work would keep the
    interpreter from exiting. A job queued after the thread decided to end starts a new one.
    """

    def __init__(self) -> None:
        self._cond = _forksafe.condition()
        self._jobs: deque[Callable[[], Any]] = deque()
        self._busy = 0
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], Any]) -> None:
        with self._cond:
            self._jobs.append(job)
            self._busy += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="reproflow-artifacts", daemon=False)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._jobs:
                    self._thread = None
                    return
                job = self._jobs.popleft()
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - the UI is a view; never fail the process for it
                log.warning("reproflow: could not publish Prefect artifacts: %s: %s", type(exc).__name__, exc)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def wait(self, timeout: float | None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._busy == 0, timeout)


_publisher = _Publisher()


def _reset_after_fork() -> None:
    global _publisher
    _publisher = _Publisher()  # the parent's thread does not exist in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def end_in_background(store: Store, run_id: str, *, finish: Callable[[], Any] | None = None,
                      publish: bool = True, returned: Callable[[], bool] | None = None) -> None:
    """Queue a flow run's end on the publisher thread, after the flow returned, in a copy of the
    caller's context (so a temporary Prefect API set by ``prefect_test_harness`` or
    ``temporary_settings`` is the one used): ``finish()`` (its last task records and its end
    records), then, with ``publish``, ``publish_run_artifacts``. Until ``finish`` has run, this
    process's reads of the store, the subprocesses it starts and its exit wait for it
    (``store._writer.finishing``). ``returned``: whether the flow call is over; the job waits
    for it first (``finishing().hold``), unless someone waits for the end before."""
    from ...store._writer import finishing

    ctx = contextvars.copy_context()
    if publish:
        _keep_events_worker_until_published()
    else:
        _wait_for_publisher_at_exit()
    pending = finishing()
    if finish is not None:
        pending.begin()

    def job() -> None:
        if finish is not None:
            pending.mark_background()  # this thread's own reads of the store must not wait for it
            try:
                if returned is not None:
                    pending.hold(returned)
                ctx.run(finish)
            except Exception as exc:  # noqa: BLE001 - one line, as the hook's own error would be
                log.error("reproflow: the end of run %s could not be written: %s: %s", run_id, type(exc).__name__, exc)
                return
            finally:
                pending.end()
        if publish:
            ctx.run(_publish_on_own_client, store, run_id)

    _publisher.submit(job)


_exit_wait_registered = False


def _wait_for_publisher_at_exit() -> None:
    """The interpreter's exit waits for the publisher thread's jobs (without Prefect's events
    worker, for runs that publish no artifacts)."""
    global _exit_wait_registered
    if _exit_wait_registered:
        return
    try:
        threading._register_atexit(_wait_at_exit)  # type: ignore[attr-defined]
        _exit_wait_registered = True
    except RuntimeError:  # already shutting down: the publisher is a non-daemon thread, joined anyway
        pass


def _keep_events_worker_until_published() -> None:
    """Make sure Prefect's events worker outlives the publishing.

    Creating an artifact emits a ``prefect.artifact.created`` event through Prefect's
    ``EventsWorker``, whose own "threading atexit" hook drains and removes it as soon as the
    interpreter starts shutting down, before non-daemon threads such as ours are joined; a new
    one cannot start then ("can't register atexit after shutdown"), and each artifact logged a
    traceback when a script's last line was the flow. So: start the worker now (its hook is
    registered before ours), and register a hook that waits for the publisher; hooks run in
    reverse order, so ours runs first, while the worker still exists."""
    try:
        from prefect.events.worker import EventsWorker

        EventsWorker.instance()
        threading._register_atexit(_wait_at_exit)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - already shutting down, or no events client: publish anyway
        pass


def _wait_at_exit() -> None:
    from ...store._writer import finishing

    finishing().wanted.set()  # a run's end held until its flow returned is wanted now
    _publisher.wait(BACKGROUND_TIMEOUT_S * 4)


#: Per request, for publishing in the background (capped: the interpreter waits for it at exit).
BACKGROUND_TIMEOUT_S = 30.0


_ssl_contexts: dict[tuple[bool, str | None], Any] = {}


def _ssl_context() -> Any:
    """The TLS context Prefect's client would build (its CA file, or none when told to skip
    verification), built once per process: loading the CA bundle costs 30-50 ms of CPU, for
    every flow run's artifacts otherwise."""
    import ssl

    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY

    key = (bool(PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value()), PREFECT_API_SSL_CERT_FILE.value() or None)
    ctx = _ssl_contexts.get(key)
    if ctx is None:
        if key[0]:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            import certifi

            ctx = ssl.create_default_context(cafile=key[1] or certifi.where())
        _ssl_contexts[key] = ctx
    return ctx


def _publish_on_own_client(store: Store, run_id: str) -> None:
    import httpx
    from prefect.settings import PREFECT_API_REQUEST_TIMEOUT

    # Non-None httpx settings make get_client build a client of our own: the copied context still
    # holds the flow engine's client, which the engine closes when its flow run ends.
    timeout = min(float(PREFECT_API_REQUEST_TIMEOUT.value()), BACKGROUND_TIMEOUT_S)
    publish_or_warn(store, run_id, httpx_settings={"timeout": httpx.Timeout(timeout), "verify": _ssl_context()})


def publish_or_warn(store: Store, run_id: str, httpx_settings: dict[str, Any] | None = None) -> None:
    """``publish_run_artifacts`` with the report; a failure is one warning, never an exception
    (the UI is a view of the record, which is already in the store)."""
    if store.offline:
        # the run's records are in the local spool, not the store: nothing complete to show yet
        log.warning("reproflow: the Prefect artifacts of run %s are not published: its store %s is unreachable "
                    "(the records are spooled; after `reproflow sync`, `reproflow runs publish %s` publishes them)",
                    run_id, store.display_url, run_id)
        return
    try:
        publish_run_artifacts(store, run_id, report=True, httpx_settings=httpx_settings)
    except Exception as exc:  # noqa: BLE001 - the UI is a view; never fail the process for it
        log.warning("reproflow: could not publish the Prefect artifacts of run %s (the record is in the store; "
                    "`reproflow runs publish %s` publishes them later): %s", run_id, run_id, exc)


def wait_for_artifacts(timeout: float | None = 60.0) -> bool:
    """Wait until every finished flow run's end is written and its Prefect artifacts are published.

    Both happen on a background thread after the flow returns (the process waits for them before
    it exits, and its reads of the store wait for the end records by themselves). Call this
    before reading the artifacts back through Prefect's API in the same process. Returns False
    if ``timeout`` seconds passed first.
    """
    from ...store._writer import finishing

    if finishing().pending:
        finishing().wanted.set()
    return _publisher.wait(timeout)


__all__ = ["end_in_background", "publish_mode", "publish_or_warn", "publish_run_artifacts", "run_location", "summary_markdown", "task_table", "upsert_artifacts", "wait_for_artifacts"]
