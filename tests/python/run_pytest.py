"""Runs one test file with pytest for CTest: exit 0 when its tests passed, 77 (CTest's skip)
when every test skipped, 1 when any failed, when none ran, or when some skipped and others
did not (a skip must show in CTest, so tests that may skip live in files of their own)."""

import shutil
import sys
import tempfile

import pytest


class Outcomes:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = []

    def pytest_collectreport(self, report):
        # A whole module skipped (pytest.skip(allow_module_level=True), importorskip).
        if report.skipped:
            self.skipped.append(report.longrepr[2] if isinstance(report.longrepr, tuple)
                                else str(report.longrepr))

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed += 1
        elif report.skipped:
            self.skipped.append(report.longrepr[2] if isinstance(report.longrepr, tuple)
                                else str(report.longrepr))
        elif report.when == "call":
            self.passed += 1


def main(path):
    outcomes = Outcomes()
    # A temporary directory of this run's own: pytest's shared default (/tmp/pytest-of-USER)
    # prunes old runs' directories, which races with the other files CTest runs at once.
    base = tempfile.mkdtemp(prefix="kvactor-pytest-")
    try:
        rc = pytest.main(["-q", "-rs", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                          "--basetemp", base + "/tmp", path], plugins=[outcomes])
    finally:
        shutil.rmtree(base, ignore_errors=True)
    # pytest's exit code 5 (no tests collected) also covers a file skipped whole.
    if outcomes.failed or rc not in (0, 5):
        return rc or 1
    if outcomes.skipped and not outcomes.passed:
        print("skipped: " + "; ".join(sorted(set(outcomes.skipped))))
        return 77
    if outcomes.skipped:
        print("FAILED: %d tests passed and %d skipped in one file; move the tests that may "
              "skip to a file of their own so that CTest reports the skip"
              % (outcomes.passed, len(outcomes.skipped)))
        return 1
    if not outcomes.passed:
        print("FAILED: no test ran")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
