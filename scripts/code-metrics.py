#!/usr/bin/env python3
"""Size figures of the Swift sources: lines per module, the longest functions outside the numeric kernels, and
the functions that take more than five parameters.

    scripts/code-metrics.py [--top N] [--sources DIR]

A function is a `func`, `init` or `subscript` declaration with a body; its length counts the lines from the
declaration to its closing brace. Parameters are the top-level entries of the declaration's parameter list.
The numeric kernels (the ops, SIMD memory, the host kernels) are listed by module but left out of the longest
functions, where their length is the unrolling of a loop rather than orchestration.
"""
import argparse
import os
import re
import sys

NUMERIC_KERNELS = ("Autodiff/Ops/", "Autodiff/SIMDMemory.swift", "Distributed/HostKernels.swift")
DECLARATION = re.compile(r"[ \t]*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|private|fileprivate|internal|package|static|"
                         r"class|final|override|mutating|nonmutating|nonisolated|convenience|required|@inlinable|"
                         r"@usableFromInline|@discardableResult)\s+)*(func\s+([^\s(<]+)|init[?!]?|subscript)\s*(<[^>]*>)?\s*\(")


def strip_strings_and_comments(text):
    """The text with comments and string literals blanked, line breaks kept, so braces and parentheses count."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('"""', i):
            j = text.find('"""', i + 3)
            j = n if j < 0 else j + 3
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            depth = 0
            while j < n:
                if text[j] == "\\" and j + 1 < n and text[j + 1] == "(":
                    depth += 1
                    j += 2
                    continue
                if depth and text[j] == ")":
                    depth -= 1
                elif not depth and text[j] == "\\":
                    j += 2
                    continue
                elif not depth and text[j] in '"\n':
                    break
                j += 1
            out.append(" " * (j + 1 - i))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path, text):
    clean = strip_strings_and_comments(text)
    line_starts = [0] + [m.end() for m in re.finditer("\n", clean)]

    def line_of(offset):
        lo, hi = 0, len(line_starts)
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid
        return lo + 1

    for start in line_starts:
        m = DECLARATION.match(clean, start)
        if not m or clean[start:m.end()].count("\n"):
            continue
        name = m.group(2) or m.group(1).split("(")[0].strip()
        i, depth, params, seen = m.end(), 1, 0, False
        while i < len(clean) and depth:
            c = clean[i]
            if c in "([<{":
                depth += 1 if c != "<" or clean[i - 1] != "-" else 0
            elif c in ")]}" or (c == ">" and clean[i - 1] != "-"):
                depth -= 1
            elif c == "," and depth == 1:
                params += 1
            elif not c.isspace() and depth == 1:
                seen = True
            i += 1
        params += 1 if seen else 0
        # the body: the first '{' after the signature, unless a newline-free protocol requirement ends first
        j = i
        while j < len(clean) and clean[j] not in "{\n}" :
            j += 1
        while j < len(clean) and clean[j] == "\n":
            k = j + 1
            while k < len(clean) and clean[k] in " \t":
                k += 1
            if clean.startswith(("throws", "async", "->", "where", "rethrows"), k) or clean[k] == "{":
                j = k
                while j < len(clean) and clean[j] not in "{\n}":
                    j += 1
            else:
                break
        if j >= len(clean) or clean[j] != "{":
            yield name, params, None, line_of(start)
            continue
        depth, k = 1, j + 1
        while k < len(clean) and depth:
            depth += {"{": 1, "}": -1}.get(clean[k], 0)
            k += 1
        yield name, params, line_of(k - 1) - line_of(start) + 1, line_of(start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--sources", default="Sources")
    args = parser.parse_args()

    modules, found = {}, []
    for root, _, files in os.walk(args.sources):
        for name in sorted(files):
            if not name.endswith((".swift", ".c", ".h")):
                continue
            path = os.path.join(root, name)
            relative = os.path.relpath(path, args.sources)
            module = relative.split(os.sep)[0]
            text = open(path, encoding="utf-8").read()
            modules[module] = modules.get(module, 0) + text.count("\n")
            if name.endswith(".swift"):
                for function, params, length, line in functions(path, text):
                    found.append((relative, line, function, params, length))

    print("lines per module")
    for module, lines in sorted(modules.items(), key=lambda item: -item[1]):
        print(f"  {lines:6d}  {module}")
    print(f"  {sum(modules.values()):6d}  (all)")

    print(f"\nthe {args.top} longest functions outside the numeric kernels (lines)")
    kernels = lambda rel: rel.startswith(NUMERIC_KERNELS)
    bodies = sorted((f for f in found if f[4] is not None and not kernels(f[0])), key=lambda f: -f[4])
    for rel, line, function, params, length in bodies[:args.top]:
        print(f"  {length:4d}  {function}  ({rel}:{line})")

    many = sorted((f for f in found if f[3] > 5), key=lambda f: (-f[3], f[0]))
    print(f"\nfunctions with more than five parameters: {len(many)}")
    for rel, line, function, params, length in many:
        print(f"  {params:3d}  {function}  ({rel}:{line})")


if __name__ == "__main__":
    sys.exit(main())
