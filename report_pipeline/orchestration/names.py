"""The names the Dagster side agrees on: run tags, and the ops and jobs that run config names.

Tags are what the UI, the sensors, alerts and tests read back from a run; an op's name is the key of
its config in a run config (`{"ops": {START_OP: {"config": parameters}}}`). No imports: any module
may take these without pulling in Dagster.
"""

SAGA_ID_TAG = "saga/id"  # the saga a run drives (its root run's id)
SAGA_STATE_TAG = "saga/state"  # the saga's state as the run last saw it
TRIGGER_TAG = (
    "report_pipeline/trigger"  # who started the run: schedule, sensor, backfill, manual...
)
# on a run whose saga a compensate_saga run undid: that run's id (the run's log links to it)
COMPENSATION_RUN_TAG = "saga/compensation_run"
PARTITION_TAG = "report_pipeline/partition"  # the day or week a partitioned report's run covers

START_OP = "start_saga"  # every report job's first op; its config holds the launch parameters
COMPENSATE_JOB = "compensate_saga"  # undoes one saga its run left unfinished
COMPENSATE_OP = "compensate"  # that job's op; its config names the saga
