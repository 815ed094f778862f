"""`python -m snapfit.cli ...` = `snapfit ...`."""

from snapfit.cli import app

app(prog_name="snapfit")
