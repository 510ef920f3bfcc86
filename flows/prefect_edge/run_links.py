"""Links between a Prefect flow run and its MLflow run, both ways: the MLflow run carries the
flow run's id and UI address as tags, the flow run shows an artifact that points at the MLflow run."""

from __future__ import annotations

from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run
from prefect.settings import PREFECT_UI_URL

ARTIFACT_KEY = "mlflow-run"


def prefect_flow_run() -> tuple[str | None, str | None]:
    """(id, UI address) of the current Prefect flow run; the address only when a Prefect server
    with a UI is configured (PREFECT_UI_URL, or derived by Prefect from PREFECT_API_URL)."""
    run_id = flow_run.id
    ui = PREFECT_UI_URL.value()
    return run_id, (f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if run_id and ui else None)


def mlflow_ui_command(tracking_uri: str) -> str:
    return f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000"


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page when the tracking URI is an MLflow server; None for a local store."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def link_mlflow_run(tracking_uri: str, experiment_id: str, run_id: str, run_name: str) -> None:
    """Attach to the current Prefect flow run a link to its MLflow run (a server's run page), or
    for a local store a note with the run id and how to open the MLflow UI on it."""
    url = mlflow_run_url(tracking_uri, experiment_id, run_id)
    description = f"MLflow run {run_name} ({run_id})"
    if url:
        create_link_artifact(url, link_text=run_name, key=ARTIFACT_KEY, description=description)
        return
    create_markdown_artifact(
        "\n".join([
            f"**MLflow run** `{run_name}`", "",
            f"- run id `{run_id}`, experiment id `{experiment_id}`",
            f"- open it: `{mlflow_ui_command(tracking_uri)}`, then "
            f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}",
        ]),
        key=ARTIFACT_KEY, description=description,
    )
