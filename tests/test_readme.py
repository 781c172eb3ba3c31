"""The README's graded example is executed, so the docs cannot drift from the code."""

import json
import re
import shlex

from typer.testing import CliRunner

from grader.cli import app
from grader.settings import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_example_gives_the_result_it_shows(grader):
    block = re.search(r"```console\n\$ (grader .*?)\n\{(.*?)\n```", README, re.S)
    command = block.group(1).replace("\\\n", " ")
    shown = "{" + block.group(2)
    out = CliRunner().invoke(app, shlex.split(command)[1:])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    for field in ("rubric_id", "score", "max_score", "coverage", "missing"):
        assert f'"{field}": {json.dumps(result[field])}' in shown, field
    assert f'"rubric_hash": "{result["fingerprint"]["rubric_hash"]}"' in shown
    for verdict in result["key_points"][:3]:
        assert f'{{"id": "{verdict["id"]}", "status": "{verdict["status"]}"' in shown
