"""Run one Dagster job of orchestration.definitions and print what happened, as JSON.

tests/test_orchestration.py runs this with .venv-orchestrate/bin/python (the test venv
has no Dagster): ``dagster_run.py '{"job": ..., "assets": [...], "partition": ...,
"run_config": {...}}'``, or ``'{"describe": "<groups file>", "bad": "<file>"}'`` for the asset keys.
The job runs with its own executor (multiprocess) against a real instance in
DAGSTER_HOME, as `dagster dev` would run it; the answer holds each step's start and
end, its materialization metadata or failure, and the run's log lines.
"""

import json
import sys
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository


def describe(groups_file: str, bad_file: str) -> dict:
    """The asset keys of the definitions as loaded, and as built from ``groups_file``;
    the message ``bad_file`` is refused with."""
    from orchestration.definitions import build, defs
    from orchestration.meltano import ProjectError

    try:
        build(groups_file=Path(bad_file))
        refused = None
    except ProjectError as error:
        refused = str(error)

    def keys(definitions) -> list[str]:
        graph = definitions.resolve_asset_graph()
        return sorted(k.to_user_string() for k in graph.get_all_asset_keys())

    return {
        "default": keys(defs),
        "groups": keys(build(groups_file=Path(groups_file))),
        "jobs": sorted(j.name for j in defs.jobs),
        "schedules": [(s.name, s.cron_schedule) for s in defs.schedules],
        "refused": refused,
    }


def main(spec: dict) -> dict:
    if "describe" in spec:
        return describe(spec["describe"], spec["bad"])
    repository = ReconstructableRepository.for_module("orchestration.definitions", "defs")
    job = repository.get_reconstructable_job(spec["job"])
    if spec.get("assets"):
        job = job.get_subset(asset_selection={_key(a) for a in spec["assets"]})
    tags = {"dagster/partition": spec["partition"]} if spec.get("partition") else {}
    with DagsterInstance.get() as instance:
        result = execute_job(
            job,
            instance=instance,
            run_config=spec.get("run_config", {}),
            tags=tags,
            raise_on_error=False,
        )
        steps: dict[str, dict] = {}
        logs: list[str] = []
        for entry in instance.all_logs(result.run_id):
            event = entry.dagster_event
            if event is None:
                logs.append(f"{entry.step_key}: {entry.user_message}")
                continue
            if not event.step_key:
                continue
            step = steps.setdefault(event.step_key, {})
            kind = event.event_type
            if kind == DagsterEventType.STEP_START:
                step["start"] = entry.timestamp
            elif kind == DagsterEventType.STEP_SUCCESS:
                step["end"], step["status"] = entry.timestamp, "success"
            elif kind == DagsterEventType.STEP_FAILURE:
                step["end"], step["status"] = entry.timestamp, "failure"
                data = event.step_failure_data
                step["error"] = (
                    data.user_failure_data.description
                    if data.user_failure_data
                    else data.error.message
                )
                logs.append(f"{entry.step_key}: {step['error']}")
            elif kind == DagsterEventType.ASSET_MATERIALIZATION:
                metadata = event.step_materialization_data.materialization.metadata
                step["metadata"] = {k: v.value for k, v in metadata.items()}
        return {"success": result.success, "steps": steps, "logs": logs}


def _key(name: str):
    from dagster import AssetKey

    return AssetKey(name)


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1])), default=str))
