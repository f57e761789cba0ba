#!/usr/bin/env python3
"""Counts test cases across Bazel's test.xml files and prints one closing line.

Bazel's own summary counts test *targets*; CI and people want test *cases*.
GoogleTest writes one <testcase> per TEST; Bazel writes one <testcase> for
other test rules (sh_test). A target that failed without writing XML (crash,
timeout) counts as one failure.

Usage: summarize-tests.py BAZEL_TESTLOGS_DIR [--since EPOCH_SECONDS]
Last line printed: "N passed, N failed, N skipped".
"""
import os
import sys
import xml.etree.ElementTree as ET


def count_file(path):
    passed = failed = skipped = 0
    failures = []
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return 0, 1, 0, [path + ": unreadable test.xml"]
    for case in root.iter("testcase"):
        name = "%s.%s" % (case.get("classname", ""), case.get("name", ""))
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failures.append(name)
        elif case.find("skipped") is not None or case.get("result") == "skipped" \
                or case.get("status") == "notrun":
            skipped += 1
        else:
            passed += 1
    if passed + failed + skipped == 0:
        # No test cases recorded: judge by the suite's own error/failure counts.
        errs = sum(int(s.get("failures", 0)) + int(s.get("errors", 0))
                   for s in root.iter("testsuite"))
        if errs:
            failed, failures = 1, [path]
    return passed, failed, skipped, failures


def main():
    logs = sys.argv[1]
    since = 0.0
    if "--since" in sys.argv:
        since = float(sys.argv[sys.argv.index("--since") + 1])
    totals = [0, 0, 0]
    failures = []
    for dirpath, _, files in os.walk(logs, followlinks=True):
        if "test.xml" not in files:
            continue
        path = os.path.join(dirpath, "test.xml")
        if os.path.getmtime(path) < since:
            continue  # Left over from an earlier run.
        p, f, s, fl = count_file(path)
        totals[0] += p
        totals[1] += f
        totals[2] += s
        failures += ["%s: %s" % (os.path.relpath(dirpath, logs), x) for x in fl]
    for f in failures:
        print("FAILED: " + f)
    print("%d passed, %d failed, %d skipped" % tuple(totals))


if __name__ == "__main__":
    main()
