#!/usr/bin/env python3
"""Syntax check of Swift sources with tree-sitter-swift, where no Swift compiler exists.

    python check_syntax.py FILE.swift...

Counts ERROR and MISSING nodes per file; prints `swift-syntax: N passed, N failed` (one per file)
and exits 1 on any error. This is a parse, not a compile: types, names and the uniffi FFI are not
checked (see bindings/swift/README.md for where the package is compiled).

The grammar (tree-sitter-swift 0.7.4) mis-parses three constructs that uniffi 0.32 emits and that
are valid Swift; they are rewritten first, keeping line numbers:
  1. the `#if swift(>=5.8)` / `@_documentation(visibility: private)` / `#endif` block before a
     declaration (all three lines blanked);
  2. the `nonisolated(unsafe)` modifier (removed);
  3. the empty closure `{ () }` (becomes `{ }`).
"""

import re
import sys

import tree_sitter
import tree_sitter_swift

DOC_BLOCK = re.compile(
    r"^[ \t]*#if swift\(>=5\.8\)[ \t]*\n[ \t]*@_documentation\(visibility: private\)[ \t]*\n[ \t]*#endif[ \t]*$",
    re.MULTILINE,
)


def rewrite(source: str) -> str:
    source = DOC_BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), source)
    source = source.replace("nonisolated(unsafe) ", "")
    source = source.replace("{ () }", "{ }")
    return source


def problems(tree):
    """(line, kind, text) for every ERROR or MISSING node."""
    found = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            kind = "MISSING " + node.type if node.is_missing else "ERROR"
            text = node.text.decode("utf-8", "replace").splitlines()
            found.append((node.start_point[0] + 1, kind, text[0][:80] if text else ""))
            if node.is_error:
                continue  # one report per error region
        stack.extend(node.children)
    return sorted(found)


def main(paths):
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
    passed = failed = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            source = rewrite(f.read())
        found = problems(parser.parse(source.encode("utf-8")))
        if found:
            failed += 1
            print(f"FAIL {path}: {len(found)} syntax error(s)")
            for line, kind, text in found[:20]:
                print(f"  {path}:{line}: {kind}: {text}")
        else:
            passed += 1
            print(f"ok   {path} ({source.count(chr(10)) + 1} lines)")
    print(f"swift-syntax: {passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
