"""``pytest claims -n N`` (pytest-xdist): the workers run items, the controller writes ONE
report.

Each worker attaches its item's result (``ItemResult.to_dict()``, plain data) to the
item's test reports as the user property ``hessbench_item``; xdist ships the reports to
the controller, which rebuilds each :class:`~hessbench.claims.runner.ItemResult` from
the claim file (re-planned, so the claim, setup and grid point are the serial run's)
and puts them, in collection order, into its own
:class:`~hessbench.claims.runner.ClaimSession` before the plugin writes the report and
the table. An item whose worker died (xdist's "crashed while running" report) is an
ERROR item with xdist's message. Workers neither lock ``--claims-out`` nor write a report.

What differs from a serial run: timings, and ``reused_from`` (each worker measures an
identical run once, so a record reused serially may be measured again on another worker).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hessbench.claims.discovery import is_claim_file

if TYPE_CHECKING:
    from hessbench.claims.runner import ClaimSession, ItemResult

__all__ = ["KEY", "is_worker", "XdistMerge", "rebuild_result"]

KEY = "hessbench_item"


def is_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker."""
    return hasattr(config, "workerinput")


def _is_controller(config: pytest.Config) -> bool:
    return not is_worker(config) and config.pluginmanager.has_plugin("dsession")


def rebuild_result(session: ClaimSession, path: Path, name: str,
                   data: dict[str, Any] | None, crash: str | None = None) -> ItemResult:
    """The :class:`ItemResult` of item ``name`` of claim file ``path`` from its plain data
    (``ItemResult.to_dict()``), or, with ``crash``, an ERROR result saying so."""
    from hessbench.claims.expectations import Verdict
    from hessbench.claims.runner import ItemResult, SeedRecord
    from hessbench.claims.spec import load_claim
    from hessbench.claims.status import Status

    claim = load_claim(path)
    plan = {claim.item_id(s, p): (s, p) for s, p in session.plan(claim)}
    if name not in plan:
        raise ValueError(f"{path.name}: no item {name!r} under profile {session.profile}")
    setup, point = plan[name]
    if data is None:
        return ItemResult(claim=claim, setup=setup, point=point, device=str(session.device),
                          status=Status.ERROR, error=crash or "no result")
    return ItemResult(
        claim=claim, setup=setup, point=point, device=data["device"],
        records=[SeedRecord(seed=r["seed"], seconds=r["seconds"], metrics=r["metrics"],
                            figure_data=r["figure_data"], reused_from=r["reused_from"])
                 for r in data["records"]],
        verdicts=[Verdict(name=v["name"], relation=v["relation"], metrics=tuple(v["metrics"]),
                          measured=v["measured"], expected=v["expected"],
                          passed=v["verdict"] == Status.PASS.value, message=v["message"],
                          reason=v["reason"], over_seeds=v["over_seeds"], details=v["details"])
                  for v in data["verdicts"]],
        status=Status(data["status"]), error=data["error"], seconds=data["seconds"])


class XdistMerge:
    """The plugin object registered (by :mod:`hessbench.claims.plugin`) when pytest-xdist
    is installed; inert unless this process is an xdist worker or controller.

    ``state(config)`` is the claims plugin's per-run state: its ``files`` count and its
    ``get_session(config)``.
    """

    def __init__(self, state: Callable[[pytest.Config], Any]) -> None:
        self._state = state
        self.order: list[str] = []                 # collected node ids, in order
        self.payloads: dict[str, dict[str, Any]] = {}
        self.crashed: dict[str, str] = {}

    # -- worker: ship each item's result with its reports
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item):
        try:
            return (yield)
        finally:
            result = getattr(item, "result", None)
            if is_worker(item.config) and result is not None and hasattr(result, "to_dict"):
                item.user_properties.append((KEY, result.to_dict()))

    # -- controller: collect, then merge before the plugin writes the report
    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if not self.order:
            self.order = list(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in getattr(report, "user_properties", ()):
            if key == KEY:
                self.payloads.setdefault(report.nodeid, value)
                return
        if report.when == "???" and report.failed:   # xdist: the worker died running it
            self.crashed[report.nodeid] = str(report.longrepr)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = session.config
        if not _is_controller(config):
            return
        nodes = [n for n in self.order if n in self.payloads or n in self.crashed]
        nodes += sorted((set(self.payloads) | set(self.crashed)) - set(nodes))
        claim_nodes = [n for n in nodes if is_claim_file(config.rootpath / n.split("::")[0])]
        state = self._state(config)
        state.files = len({n.split("::")[0] for n in self.order
                           if is_claim_file(config.rootpath / n.split("::")[0])})
        if not claim_nodes:
            return
        ses = state.get_session(config)
        for node in claim_nodes:
            path, name = node.split("::", 1)
            ses.results.append(rebuild_result(ses, config.rootpath / path, name,
                                              self.payloads.get(node), self.crashed.get(node)))

