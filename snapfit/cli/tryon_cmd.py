"""`snapfit tryon`: one try-on through a running orchestrator, with a progress bar per denoising step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from snapfit.cli.app import DEFAULT_API_URL, app, console


@app.command("tryon")
def tryon_command(
    photo: Annotated[Path, typer.Argument(help="full-body photo of the person (JPEG, PNG or WebP)")],
    product: Annotated[str, typer.Option(help="product id from the catalog")],
    out: Annotated[Path, typer.Option(help="where to write the dressed photo (PNG)")] = Path("tryon.png"),
    url: Annotated[str, typer.Option(help="orchestrator base URL")] = DEFAULT_API_URL,
    category: Annotated[Optional[str], typer.Option(help="upper_body | lower_body | dresses (default: the product's)")] = None,
    steps: Annotated[Optional[int], typer.Option(help="denoising steps (server default 50)")] = None,
    guidance: Annotated[Optional[float], typer.Option(help="classifier-free guidance (server default 7.5)")] = None,
    seed: Annotated[int, typer.Option(help="noise seed: same seed and inputs, same image")] = 1234,
    scheduler: Annotated[Optional[str], typer.Option(help="ddim or dpmpp (DPM-Solver++, good at ~20 steps)")] = None,
    force: Annotated[bool, typer.Option(help="try even if the product photo was classified as unusable")] = False,
) -> None:
    """Dress the person in PHOTO in a catalog product through a running orchestrator, with a progress bar."""
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    form = {"product_id": product, "seed": str(seed), "force": str(force).lower()}
    for key, value in (("category", category), ("steps", steps), ("guidance", guidance), ("scheduler", scheduler)):
        if value is not None:
            form[key] = str(value)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            response = client.post("/v1/tryon", data=form, files={"file": (photo.name, photo.read_bytes())})
            if response.status_code != 202:
                error = response.json().get("error", {})
                hint = " (the CLI option is --force)" if error.get("code") == "not_tryon_ready" else ""
                console.print(f"[bold red]try-on refused ({response.status_code})[/]: "
                              f"{error.get('message', response.text)}{hint}")
                raise typer.Exit(1)
            job = response.json()
            with Progress(TextColumn("dressing {task.fields[status]}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=console) as bar:
                task = bar.add_task("tryon", total=job["total_steps"], status=job["status"])
                with client.stream("GET", f"/v1/tryon/{job['job_id']}/events", timeout=None) as events:
                    for line in events.iter_lines():
                        if line.startswith("data:"):
                            job = json.loads(line[5:])
                            bar.update(task, completed=job["step"], total=job["total_steps"], status=job["status"])
            if job["status"] != "succeeded":
                console.print(f"[bold red]try-on {job['status']}[/]: {(job.get('error') or {}).get('message', '')}")
                raise typer.Exit(1)
            out.write_bytes(client.get(job["result_url"]).content)
    except httpx.HTTPError as error:
        console.print(f"[bold red]lost contact with the orchestrator at {url}[/]: {error}")
        raise typer.Exit(1)
    console.print(f"wrote {out}")

