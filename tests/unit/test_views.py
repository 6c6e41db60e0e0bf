"""Human tables: they fit the terminal, shorten only what they must, and -o json keeps it all."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from fnctl.cli import views
from fnctl.cli.output import table_lines
from fnctl.model import ServiceInfo
from fnctl.templates import builtin
from tests.conftest import fnctl

LONG_URL = "http://" + "a-very-long-function-name-" * 3 + ".team-namespace-with-a-long-name.apps.example.com"


def test_a_wide_table_fits_100_columns_and_marks_what_it_shortened():
    rows = [["fn", LONG_URL, "fn-00001", "5m", "True", "RevisionMissing" * 3]]
    lines = table_lines(views.SERVICE_HEADERS, rows, 100)
    assert all(len(line) <= 100 for line in lines), lines
    assert lines[0].split() == list(views.SERVICE_HEADERS)
    cells = lines[1].split()
    assert cells[0] == "fn" and cells[2:5] == ["fn-00001", "5m", "True"]   # short cells stay whole
    assert cells[1].endswith("...") and LONG_URL.startswith(cells[1][:-3])


def test_a_narrow_table_is_left_alone():
    rows = [["fn", "http://fn.default.example.com", "fn-00001", "5m", "True", ""]]
    lines = table_lines(views.SERVICE_HEADERS, rows, 100)
    assert "..." not in "".join(lines) and lines[1].split()[1] == "http://fn.default.example.com"


@pytest.mark.parametrize("width", [40, 60, 80, 100, 120])
def test_builtin_templates_fit(width):
    lines = table_lines(views.TEMPLATE_HEADERS, views.template_rows(list(builtin().values())), width)
    # Columns never shrink below 8 characters (or their header): at 40, five columns cannot fit.
    assert all(len(line) <= max(width, 4 * 8 + 10 + 3 * 2) for line in lines), lines
    assert [line.split()[0] for line in lines[1:]] == sorted(builtin())


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (45, "45s"), (119, "119s"), (200, "3m20s"), (600, "10m"), (3 * 3600 + 300, "3h5m"),
    (5 * 3600, "5h"), (30 * 3600, "30h"), (3 * 86400 + 4 * 3600, "3d4h"), (20 * 86400, "20d"),
    (3 * 365 * 86400 + 30 * 86400, "3y30d"), (10 * 365 * 86400, "10y"),
])
def test_ages_read_as_kubectl_prints_them(seconds, text):
    assert views.human_duration(seconds) == text


def test_age_of_a_service():
    now = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)
    created = (now - timedelta(minutes=3, seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = views.service_rows([ServiceInfo("fn", "cluster", created=created, ready=None)], now)
    assert rows == [["fn", "", "", "3m5s", "Unknown", ""]]


def test_get_buildtemplate_table_fits_and_details_keep_defaults():
    table = fnctl("get", "buildtemplate", "--local", env={"COLUMNS": "100"})
    assert table.code == 0, table
    lines = table.out.splitlines()
    assert lines[0].split() == ["NAME", "RUNTIME", "PARAMETERS", "SOURCE"]
    assert all(len(line) <= 100 for line in lines), table.out
    assert "=" not in table.out                          # names only; defaults are in the details
    detail = fnctl("get", "buildtemplate", "bash", "--local", env={"COLUMNS": "100"})
    assert detail.code == 0, detail
    assert "  HANDLER=function.handler" in detail.out.splitlines()
    full = json.loads(fnctl("get", "buildtemplate", "--local", "-o", "json", env={"COLUMNS": "40"}).out)
    runtimes = {t["name"]: t["runtime"] for t in full}
    assert runtimes["azure-dotnet"] == builtin()["azure-dotnet"].runtime    # never shortened
