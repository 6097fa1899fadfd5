"""The SAM example passes AWS's CloudFormation linter (cfn-lint): no errors, no warnings.

cfn-lint knows Lambda's runtimes and their deprecation dates, so a template that names a
deprecated runtime fails here the day the runtime is deprecated.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "examples" / "sam" / "template.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def lint(template: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CFN_LINT), "--format", "parseable", "--", str(template)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_sam_template_has_no_errors_or_warnings() -> None:
    done = lint(TEMPLATE)
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr


def test_the_linter_does_flag_a_deprecated_runtime(tmp_path: Path) -> None:
    # Beside the original, so that its relative CodeUri paths still resolve.
    text = TEMPLATE.read_text().replace("Runtime: python3.13", "Runtime: nodejs20.x")
    old = tmp_path / "template.yaml"
    old.write_text(text)
    done = lint(old)
    assert done.returncode != 0 and "W2531" in done.stdout, done.stdout + done.stderr
