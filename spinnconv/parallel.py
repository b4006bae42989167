"""Map a function over blocks of work: in this process, over ``--jobs`` local
processes (joblib's loky backend), or on a Dask ``distributed`` cluster
(``--dask-scheduler ADDRESS``).

Every call's arguments travel with its task (images, spikes, kernels and
parameters are small arrays and dicts), so workers need the same spinnconv and
simulator installed, but no dataset and no model directory. On a cluster, the
blocks of a worker that dies are recomputed on the others (the scheduler
reschedules them; ``retries`` also reruns a block whose task raised), so no
block is lost and the results do not depend on where a block ran.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .errors import RuntimeFailure, SpinnconvError, UsageError

#: Seconds to wait for a Dask scheduler before giving up.
CONNECT_TIMEOUT_S = 5.0
#: Extra attempts of a block whose task raised on a Dask worker.
RETRIES = 2

_clients: dict[str, Any] = {}
_simulator_lock = threading.Lock()  # PyNN's simulator state is per process


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S):
    """The ``distributed.Client`` of the scheduler at ``address`` (one per address and
    process); a scheduler that does not answer, or has no worker, within ``timeout_s``
    is a :class:`~spinnconv.errors.RuntimeFailure`."""
    if address in _clients:
        return _clients[address]
    try:
        from distributed import Client
        from distributed.comm import get_address_host_port
    except ImportError:
        raise UsageError("--dask-scheduler needs Dask's distributed: pip install "
                         "'spinnconv[cluster]' (or pip install distributed)") from None
    try:
        get_address_host_port(address)
    except ValueError as err:
        raise UsageError(f"--dask-scheduler {address}: {err}; give the address that "
                         "'dask scheduler' prints, e.g. tcp://HOST:8786") from None
    try:
        client = Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError):
        raise RuntimeFailure(
            f"cannot reach the Dask scheduler at {address} within {timeout_s:g} s: "
            f"start it with 'dask scheduler' and workers with "
            f"'dask worker {address}', or run without --dask-scheduler") from None
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError:
        client.close()
        raise RuntimeFailure(f"the Dask scheduler at {address} has no workers: start them "
                             f"with 'dask worker {address} --nthreads 1'") from None
    _clients[address] = client
    return client


def n_workers(jobs: int, scheduler: str | None = None) -> int:
    """How many processes a map runs on: the cluster's workers, or ``jobs``."""
    if scheduler:
        return max(1, len(connect(scheduler).scheduler_info(n_workers=-1)["workers"]))
    return max(1, jobs)


def workers_for(n_calls: int, jobs: int, scheduler: str | None = None) -> int:
    """Worker processes that :func:`map_calls` uses for ``n_calls`` calls (0: it runs
    them in this process)."""
    if scheduler:
        return min(n_workers(jobs, scheduler), n_calls)
    return min(jobs, n_calls) if jobs > 1 and n_calls > 1 else 0


def map_calls(function: Callable, calls: Sequence[tuple], jobs: int = 1,
              scheduler: str | None = None) -> Iterator[Any]:
    """Yield ``function(*call)`` for every call in ``calls``, in order.

    With ``scheduler`` the calls are tasks on that Dask cluster; else with
    ``jobs > 1`` and more than one call they run in ``min(jobs, len(calls))``
    loky processes (shut down afterwards, see :func:`stop_idle_workers`); else
    here, one after the other. ``function`` must be importable by the workers.
    """
    if scheduler:
        yield from _map_dask(connect(scheduler), function, calls)
    elif jobs > 1 and len(calls) > 1:
        from joblib import Parallel, delayed

        try:
            yield from Parallel(n_jobs=min(jobs, len(calls)), return_as="generator")(
                delayed(function)(*call) for call in calls)
        finally:
            stop_idle_workers()
    else:
        for call in calls:
            yield function(*call)


def _map_dask(client, function: Callable, calls: Sequence[tuple]) -> Iterator[Any]:
    from distributed import KilledWorker

    if not calls:
        return
    futures = client.map(_one_at_a_time, [function] * len(calls), *zip(*calls, strict=True),
                         pure=False, retries=RETRIES)
    try:
        for future in futures:
            try:
                result = future.result()
            except SpinnconvError:
                raise
            except KilledWorker as err:
                raise RuntimeFailure(f"Dask workers died running a block ({err}); check "
                                     "the workers' memory and logs, then run again") from None
            except Exception as err:
                reason = (str(err).splitlines() or [""])[0][:200]
                raise RuntimeFailure(f"a block failed on a Dask worker ({type(err).__name__}: "
                                     f"{reason}); the workers need the same spinnconv and "
                                     "simulator as this machine") from err
            yield result
    finally:
        client.cancel([future for future in futures if not future.done()])


def _one_at_a_time(function: Callable, *args: Any) -> Any:
    """``function(*args)`` on a Dask worker, never two at once in one process (a worker
    started with ``--nthreads`` above 1 would otherwise share one simulator)."""
    with _simulator_lock:
        return function(*args)


def stop_idle_workers() -> None:
    """Shut down joblib's reusable loky workers once their work is done, so idle
    simulator processes hold no memory during the next phase (the next parallel
    call starts fresh ones)."""
    try:
        from joblib.externals.loky import reusable_executor
    except ImportError:
        return
    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)
