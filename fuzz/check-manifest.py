#!/usr/bin/env python3
"""fuzz/Package.swift repeats part of the main package's target graph by hand (its Sources/Sprof*
are symlinks to the shipped targets). When a target or a dependency changes in Package.swift and
not here, the fuzz build breaks only in CI. This compares the two manifests as SwiftPM reads them
(`swift package dump-package`) and prints one line per difference; status 1 when there is one.

Usage: fuzz/check-manifest.py  (from anywhere; needs only swift)"""
import json, os, subprocess, sys, tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def targets(package_dir, scratch):
    # A scratch path of its own, so a build holding the package's .build lock does not block us.
    out = subprocess.run(["swift", "package", "--scratch-path", scratch, "dump-package"],
                         cwd=package_dir, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"fuzz/check-manifest.py: swift package dump-package failed in {package_dir}: "
                 + (out.stderr.strip().splitlines() or ["?"])[-1])
    result = {}
    for t in json.loads(out.stdout)["targets"]:
        names = sorted(v[0] for dep in t.get("dependencies", []) for v in dep.values())
        result[t["name"]] = (t["type"], names)
    return result

with tempfile.TemporaryDirectory() as scratch:
    main = targets(root, os.path.join(scratch, "main"))
    fuzz = targets(os.path.join(root, "fuzz"), os.path.join(scratch, "fuzz"))

problems = []
for name, (kind, deps) in sorted(fuzz.items()):
    if kind == "executable":
        continue  # the harnesses themselves exist only here
    if name not in main:
        problems.append(f"{name}: in fuzz/Package.swift but not in Package.swift")
    elif main[name] != (kind, deps):
        problems.append(f"{name}: fuzz/Package.swift has {kind} {deps}, Package.swift has {main[name][0]} {main[name][1]}")
    for dep in deps:
        if dep in main and dep not in fuzz:
            problems.append(f"{name} depends on {dep}, which fuzz/Package.swift does not declare "
                            f"(add the target and a symlink fuzz/Sources/{dep})")
for p in problems:
    print(f"fuzz/check-manifest.py: {p}; update fuzz/Package.swift to match Package.swift", file=sys.stderr)
sys.exit(1 if problems else 0)
