"""The kill-storm soak, short: every scenario clean (0 hung, 0 lost, 0
duplicated, 0 leaked, still serving) under SIGKILLs every 1-50 ms.  The
full run is ``python -m shmrt.tools.faults`` (docs/design.md has its
figures)."""

from __future__ import annotations

import pytest
from shmrt.tools.faults import __main__ as cli
from shmrt.tools.faults.soak import SCENARIOS, run

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("scenario,retries", [(s, r) for s in SCENARIOS for r in (0, 2)])
def test_soak_is_clean(scenario: str, retries: int) -> None:
    out = run(scenario, 1.5, (1.0, 50.0), retries, workers=2, seed=retries + 1)
    assert out.kills > 0 and out.tasks > 0, out
    assert (out.hung, out.lost, out.duplicated, out.leaked) == (0, 0, 0, 0), (out, out.notes)
    assert out.served, out.notes


def test_cli_table_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["startup", "--duration", "0.3", "--retries", "0", "--interval", "5-20"]) == 0
    text = capsys.readouterr().out
    assert "startup" in text and "leaked" in text
    with pytest.raises(SystemExit):
        cli.main(["nosuch"])
    with pytest.raises(SystemExit):
        cli.main(["submit", "--interval", "50-1"])
