"""Dagster definitions: one asset per tap and stream group, a daily schedule, a backfill.

Built from meltano.yml and orchestration/groups.yml, never hand-listed: a tap added to
meltano.yml is an asset at the next load. Every asset is one ``meltano run`` with its own
state ID, so assets share no bookmark and Dagster may run them on any worker that has
the project (its .venv and installed plugins); see the README for Kubernetes and Celery.

Which loader and Meltano environment a run uses is run configuration of the ``meltano``
resource (``sandbox`` and ``target-duckdb`` by default, ``prod`` for the real APIs)::

    resources:
      meltano:
        config: {environment: prod, loader: target-postgres}
"""

import os
from datetime import datetime, timezone
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSelection,
    ConfigurableResource,
    DefaultScheduleStatus,
    Definitions,
    ExecutorDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    MonthlyPartitionsDefinition,
    ScheduleDefinition,
    asset,
    define_asset_job,
    multiprocess_executor,
)
from pydantic import Field

from orchestration import meltano as project
from orchestration.meltano import Backfill, RunOutcome, StreamGroup, env_prefix


class MeltanoResource(ConfigurableResource):
    """How a run calls Meltano: which environment and loader, in which project."""

    environment: str = Field(
        default="sandbox", description="Meltano environment: sandbox (default) or prod."
    )
    loader: str = Field(default="target-duckdb", description="A loader of meltano.yml.")
    project_dir: str = Field(
        default=str(project.ROOT), description="The project root (meltano.yml, .venv)."
    )
    duckdb_dir: str = Field(
        default="output/dagster",
        description=(
            "target-duckdb only: each state ID writes <duckdb_dir>/<group>.duckdb, as DuckDB "
            "takes one writing process per file and groups run at the same time."
        ),
    )

    def run(
        self,
        context: AssetExecutionContext,
        tap: str,
        suffix: str,
        select: tuple[str, ...] | None,
        env: dict[str, str] | None = None,
    ) -> MaterializeResult:
        """One ``meltano run``; a failed one fails the asset with the tap's own line."""
        root = Path(self.project_dir)
        if not (root / ".venv" / "bin" / "meltano").exists() or not (root / ".meltano").is_dir():
            raise Failure(
                f"{root} has no .venv/bin/meltano or no installed plugins (.meltano/): "
                "run ./scripts/setup.sh there first."
            )
        loaders = project.load_project(root).loaders
        if self.loader not in loaders:
            raise Failure(
                f"loader {self.loader!r} is not a loader of meltano.yml ({', '.join(loaders)})."
            )
        extra = dict(env or {})
        if self.loader == "target-duckdb":
            directory = root / self.duckdb_dir
            directory.mkdir(parents=True, exist_ok=True)
            extra.setdefault("TARGET_DUCKDB_FILEPATH", str(directory / f"{suffix}.duckdb"))

        def log(level: str, line: str) -> None:
            getattr(context.log, level if level in ("warning", "error") else "info")(line)

        outcome = project.run(
            tap=tap,
            loader=self.loader,
            environment=self.environment,
            suffix=suffix,
            select=select,
            env=extra,
            root=root,
            log=log,
        )
        metadata = _metadata(outcome)
        if outcome.error is not None:
            raise Failure(description=outcome.error, metadata=metadata)
        return MaterializeResult(metadata=metadata)


def _metadata(outcome: RunOutcome) -> dict:
    return {
        "state_id": outcome.state_id,
        "duration_seconds": MetadataValue.float(outcome.duration_seconds),
        "rows": MetadataValue.json(outcome.rows),
        "rows_total": MetadataValue.int(sum(outcome.rows.values())),
        **{f"rows/{stream}": MetadataValue.int(n) for stream, n in outcome.rows.items()},
    }


def asset_name(name: str) -> str:
    """A group name as Dagster spells an asset key (letters, digits, underscores)."""
    return name.replace("-", "_")


def group_asset(group: StreamGroup) -> AssetsDefinition:
    """The asset of one stream group: ``meltano run`` with the group's selection."""

    @asset(
        name=asset_name(group.name),
        group_name=asset_name(group.tap),
        kinds={"meltano"},
        tags={"tap": group.tap},
        description=(
            f"`meltano run --state-id-suffix={group.name} {group.tap} <loader>`"
            + (f", selecting {', '.join(group.select)}." if group.select else ".")
        ),
    )
    def materialize(context: AssetExecutionContext, meltano: MeltanoResource) -> MaterializeResult:
        return meltano.run(context, group.tap, group.name, group.select)

    return materialize


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def backfill_asset(backfill: Backfill) -> AssetsDefinition:
    """Monthly partitions; each month's run reads [its first instant, the next month's)."""
    partitions = MonthlyPartitionsDefinition(start_date=backfill.start_month, fmt="%Y-%m")
    prefix = env_prefix(backfill.tap)

    @asset(
        name=asset_name(backfill.name),
        group_name=asset_name(backfill.tap),
        partitions_def=partitions,
        kinds={"meltano"},
        tags={"tap": backfill.tap},
        description=(
            f"{backfill.tap} month by month from {backfill.start_month}: state ID suffix "
            f"{backfill.name}-<YYYY-MM>, start_date and end_date the month's bounds."
        ),
    )
    def materialize(context: AssetExecutionContext, meltano: MeltanoResource) -> MaterializeResult:
        window = context.partition_time_window
        return meltano.run(
            context,
            backfill.tap,
            f"{backfill.name}-{context.partition_key}",
            backfill.select,
            env={
                f"{prefix}_START_DATE": rfc3339(window.start),
                f"{prefix}_END_DATE": rfc3339(window.end),
            },
        )

    return materialize


def executor() -> ExecutorDefinition:
    """multiprocess on one machine; ORCHESTRATION_EXECUTOR=k8s or celery for many."""
    choice = os.environ.get("ORCHESTRATION_EXECUTOR", "multiprocess")
    if choice == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if choice == "celery":
        from dagster_celery import celery_executor

        return celery_executor
    if choice != "multiprocess":
        raise project.ProjectError(
            f"ORCHESTRATION_EXECUTOR={choice!r}: expected multiprocess, k8s or celery."
        )
    return multiprocess_executor


def build(root: Path = project.ROOT, groups_file: Path | None = None) -> Definitions:
    """Everything Dagster shows, from meltano.yml and the groups file."""
    loaded = project.load_project(root, groups_file)
    groups = [group_asset(g) for g in loaded.groups]
    backfills = [backfill_asset(b) for b in loaded.backfills]
    all_groups = define_asset_job(
        "all_groups",
        selection=AssetSelection.assets(*groups),
        description="Every stream group of every tap, each with its own state ID.",
    )
    backfill_jobs = [
        define_asset_job(
            f"{asset_name(b.name)}_job",
            selection=AssetSelection.assets(a),
            partitions_def=a.partitions_def,
        )
        for b, a in zip(loaded.backfills, backfills, strict=True)
    ]
    daily = ScheduleDefinition(
        name="all_groups_daily",
        job=all_groups,
        cron_schedule="0 3 * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.STOPPED,
        description="03:00 UTC: every group, with the meltano resource's default config.",
    )
    return Definitions(
        assets=[*groups, *backfills],
        jobs=[all_groups, *backfill_jobs],
        schedules=[daily],
        resources={"meltano": MeltanoResource(project_dir=str(root))},
        executor=executor(),
    )


defs = build()
