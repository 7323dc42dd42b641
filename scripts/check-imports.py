#!/usr/bin/env python3
"""Checks that each target's dependencies in Package.swift are exactly the modules its Swift files import.

    scripts/check-imports.py        prints each difference and exits 1, or exits 0 when there is none

A dependency no file imports is a false one; an import not declared compiles only because another dependency
brings the module in. System modules (Foundation, Glibc, Testing, ...) are not declared and are left out; C
modules count like any other.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM = {"Foundation", "FoundationEssentials", "FoundationNetworking", "Glibc", "Darwin", "Dispatch", "Synchronization", "Testing", "XCTest",
          "PackageDescription", "os"}


def balanced(text, start):
    """The text from `start` (an opening bracket) to its closing bracket."""
    depth = 0
    for index in range(start, len(text)):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index + 1]
    return text[start:]


def targets(package):
    """(name, directory, declared dependencies) of every target in Package.swift."""
    found = []
    for match in re.finditer(r"\.(target|testTarget|executableTarget)\(", package):
        declaration = balanced(package, match.end() - 1)
        name = re.search(r"name:\s*\"([^\"]+)\"", declaration).group(1)
        path = re.search(r"path:\s*\"([^\"]+)\"", declaration)
        directory = path.group(1) if path else ("Tests/" if match.group(1) == "testTarget" else "Sources/") + name
        dependencies = set()
        block = re.search(r"dependencies:\s*\[", declaration)
        if block:
            text = balanced(declaration, block.end() - 1)
            dependencies |= set(re.findall(r"\.product\(name:\s*\"([^\"]+)\"", text))
            text = re.sub(r"\.product\([^)]*\)", "", text)
            dependencies |= set(re.findall(r"\"([^\"]+)\"", text))
        found.append((name, directory, dependencies))
    return found


def imports(directory):
    modules = set()
    for root, _, files in os.walk(os.path.join(ROOT, directory)):
        for name in files:
            if name.endswith(".swift"):
                text = open(os.path.join(root, name), encoding="utf-8").read()
                modules |= set(re.findall(r"^\s*(?:@testable\s+|@_exported\s+|package\s+)?import\s+(\w+)", text, re.M))
    return modules - SYSTEM


def main():
    package = open(os.path.join(ROOT, "Package.swift"), encoding="utf-8").read()
    differences = 0
    for name, directory, declared in targets(package):
        imported = imports(directory) - {name}
        for module in sorted(declared - imported):
            print(f"{name}: depends on {module}, which none of its files imports")
            differences += 1
        for module in sorted(imported - declared):
            print(f"{name}: imports {module} without depending on it")
            differences += 1
    if differences:
        print(f"{differences} difference(s) between Package.swift and the imports")
        return 1
    print("Package.swift's dependencies are the imports, target by target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
