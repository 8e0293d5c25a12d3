"""`prefect_dask.DaskTaskRunner`, with what a Dask worker rebuilds for every task run kept
between task runs.

Works around prefect 3.8 / prefect-dask 0.3: each task run on a Dask worker rebuilds the whole
Prefect settings object from the context shipped with it (54 pydantic-settings models, each
reading the environment and the config files) and opens two new API clients (each loading
certifi's CA bundle into a fresh TLS context): for trials of a few seconds, a share of the
cluster's time that no scheduling recovers (docs: Performance). Prefect's maintainers proposed
the same two caches for the ProcessPoolTaskRunner (PrefectHQ/prefect#20853, closed unmerged);
nothing like it exists for Dask workers.

So sync tasks are submitted to a module-level entry point (`run_on_worker`) that
- enters the shipped settings once per worker process and distinct settings (keyed by their
  serialized form, so a flow with other settings gets its own), instead of rebuilding them;
- keeps one open sync API client per worker thread for those settings, as Prefect's own
  `SyncClientContext`, which `get_client` and the task engine then reuse;
- then runs the task exactly as prefect-dask's own wrapper does (`run_task_sync`).
Everything else (task run ids, inputs, the shipped context, the returned state, the futures) is
prefect-dask's: this module copies only the submit path, kept in step with
`prefect_dask.client.PrefectDaskClient.submit`. Async tasks take prefect-dask's own path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any
from uuid import UUID, uuid4

import distributed
import orjson
from prefect.context import SettingsContext, SyncClientContext, serialize_context
from prefect.task_engine import run_task_sync
from prefect.utilities.engine import collect_task_run_inputs_sync
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

# Settings contexts per worker process, by their serialized form: a long-lived worker serves
# flow after flow, nearly always with the same settings; a few distinct ones are kept.
_KEEP_SETTINGS = 4
_settings: OrderedDict[bytes, SettingsContext] = OrderedDict()
_settings_lock = threading.Lock()
_thread = threading.local()
_built = {"settings": 0, "clients": 0}


def cache_stats() -> dict[str, int]:
    """What this worker process has built so far: settings contexts and API clients."""
    with _settings_lock:
        return dict(_built)


def _settings_context(serialized: dict[str, Any]) -> SettingsContext:
    key = orjson.dumps(serialized, option=orjson.OPT_SORT_KEYS, default=str)
    with _settings_lock:
        found = _settings.get(key)
        if found is None:
            found = SettingsContext(**serialized)
            _settings[key] = found
            _built["settings"] += 1
            while len(_settings) > _KEEP_SETTINGS:
                _settings.popitem(last=False)
        # A copy to enter: a context model holds its own reset token, and two worker threads
        # may enter the same settings at once.
        return found.model_copy()


def _client_context(settings: SettingsContext) -> SyncClientContext:
    """This thread's open client for `settings` (built in them: their API URL and key)."""
    held = getattr(_thread, "client", None)
    if held is not None and held[0] is settings.settings:
        return held[1]
    if held is not None:
        held[1].__exit__(None, None, None)
    # Entered once and left open: SyncClientContext counts entries and closes its client when
    # the count returns to 0, so this first entry keeps it open for the thread's next tasks.
    context = SyncClientContext()
    context.__enter__()
    _thread.client = (settings.settings, context)
    with _settings_lock:
        _built["clients"] += 1
    return context


def run_on_worker(*, context: dict[str, Any], **run_task_kwargs: Any) -> Any:
    """A sync Prefect task run on a Dask worker, in cached settings and with a kept client."""
    context = dict(context)
    serialized = context.pop("settings_context", None)
    if not serialized:
        return run_task_sync(context=context, **run_task_kwargs)
    with _settings_context(serialized) as settings:
        client = _client_context(settings)
        # Prefect's own variable for "the current sync client": get_client() and the engine's
        # SyncClientContext.get_or_create() return this client instead of building new ones.
        token = SyncClientContext.__var__.set(client)
        try:
            return run_task_sync(context=context, **run_task_kwargs)
        finally:
            SyncClientContext.__var__.reset(token)


class CachedContextDaskTaskRunner(DaskTaskRunner):
    """DaskTaskRunner whose sync task runs reuse their worker's settings and API client."""

    def submit(
        self,
        task: Any,
        parameters: dict[str, Any],
        wait_for: Any = None,
        dependencies: dict[str, set[Any]] | None = None,
    ) -> PrefectDaskFuture[Any]:
        if task.isasync:
            return super().submit(task, parameters, wait_for, dependencies)
        if not self._started:
            raise RuntimeError("The task runner must be started before submitting work.")
        parameters = self._optimize_futures(parameters)
        wait_for = self._optimize_futures(wait_for) if wait_for else None
        task_run_id = uuid4()
        inputs = {
            k: collect_task_run_inputs_sync(v, future_cls=distributed.Future)
            for k, v in parameters.items()
        }
        if dependencies:
            inputs = {k: v | dependencies.get(k, set()) for k, v in inputs.items()}
        future = self.client.submit(
            run_on_worker,
            key=f"{task.name}-{task_run_id.hex}",
            task=task,
            task_run_id=task_run_id,
            parameters=parameters,
            wait_for=wait_for,
            return_type="state",
            dependencies=inputs,
            context=_shipped_context(task, task_run_id, inputs),
        )
        return PrefectDaskFuture(wrapped_future=future, task_run_id=task_run_id)


def _shipped_context(task: Any, task_run_id: UUID, inputs: dict[str, Any]) -> dict[str, Any]:
    return serialize_context(
        asset_ctx_kwargs={
            "task": task,
            "task_run_id": task_run_id,
            "task_inputs": inputs,
            "copy_to_child_ctx": True,
        }
    )
