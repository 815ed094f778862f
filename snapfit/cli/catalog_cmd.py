"""`snapfit import` and `snapfit generate-catalog`: catalogs into a running orchestrator, and the demo catalog."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from snapfit.cli.app import DEFAULT_API_URL, app, console


@app.command("import")
def import_catalog(
    csv_file: Annotated[Path, typer.Argument(help="catalog CSV (id, name, image, link, brand, price, tags, category)")],
    url: Annotated[str, typer.Option(help="orchestrator base URL")] = DEFAULT_API_URL,
    mapping: Annotated[Optional[Path], typer.Option(help="JSON column mapping for other CSV layouts")] = None,
    admin_token: Annotated[Optional[str], typer.Option(envvar="SNAPFIT_ADMIN_TOKEN", show_default=False, help="the orchestrator's admin token (`snapfit up` prints it)")] = None,
    reembed: Annotated[bool, typer.Option(help="embed and classify every row again, also rows already stored unchanged (after exporting another CLIP or classifier)")] = False,
) -> None:
    """Import a catalog CSV into a running orchestrator, with a progress bar and a per-row error report."""
    if not admin_token:
        console.print("[bold red]imports need the orchestrator's admin token[/]: pass --admin-token or set "
                      "SNAPFIT_ADMIN_TOKEN (`snapfit up` prints it)")
        raise typer.Exit(2)
    job = upload_and_follow(url, csv_file, admin_token, mapping, reembed=reembed)
    if job is None or job["status"] != "succeeded":
        raise typer.Exit(1)


def upload_and_follow(base_url: str, csv_file: Path, admin_token: str, mapping: Path | None = None,
                      reembed: bool = False) -> dict | None:
    import httpx

    try:
        return _upload_and_follow_unchecked(base_url, csv_file, admin_token, mapping, reembed)
    except httpx.HTTPError as error:
        console.print(f"[bold red]lost contact with the orchestrator at {base_url}[/]: {error}")
        return None


def _upload_and_follow_unchecked(base_url: str, csv_file: Path, admin_token: str, mapping: Path | None,
                                 reembed: bool) -> dict | None:
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with httpx.Client(base_url=base_url, timeout=60) as client:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        data = {"base_dir": str(csv_file.resolve().parent), "reembed": str(reembed).lower()}
        if mapping:
            data["mapping"] = mapping.read_text()
        response = client.post("/v1/catalog/imports", files={"file": (csv_file.name, csv_file.read_bytes())}, data=data,
                               headers={"Authorization": f"Bearer {admin_token}"})
        if response.status_code != 202:
            console.print(f"[bold red]import refused[/]: {response.json().get('error', response.text)}")
            return None
        job = response.json()
        with Progress(TextColumn("importing {task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]:.1f} rows/s"), TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("import", total=job["total_rows"], name=csv_file.name, rate=0.0)
            while job["status"] in ("queued", "running"):
                time.sleep(0.5)
                job = client.get(f"/v1/catalog/imports/{job['job_id']}").json()
                bar.update(task, completed=job["processed_rows"], rate=job["rows_per_second"])
    console.print(f"import {job['status']}: {job['inserted']} inserted, {job['updated']} updated, "
                  f"{job['unchanged']} unchanged, {job['failed']} failed")
    for error in job["errors"][:20]:
        console.print(f"  line {error['line']} ({error['product_id']}): {error['message']}")
    return job



@app.command("generate-catalog")
def generate_demo_catalog(
    out_dir: Annotated[Path, typer.Argument(help="folder for images/, catalog.csv and tryon_labels.csv")] = Path("runs/demo_catalog"),
    count: Annotated[int, typer.Option(help="number of rows")] = 1000,
    seed: int = 0,
) -> None:
    """Write a synthetic catalog (rendered product photos + non-product photos + CSV in the crawl's layout), and
    tryon_labels.csv (image,label) for `snapfit train-classifier`."""
    from snapfit.demo_catalog import generate_catalog

    try:
        console.print(f"wrote {generate_catalog(out_dir, count=count, seed=seed)}")
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--count")

