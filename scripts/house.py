#!/usr/bin/env python3
"""The house's size rules, measured: Rust files over 500 lines and
functions over 80 lines outside tests (`#[cfg(test)]` modules, `tests/`,
`benches/`, `tests.rs`). Prints each offender; exits 1 if there is one.

    python3 scripts/house.py [--max-file 500] [--max-fn 80]
"""
import argparse
import pathlib
import re
import sys

STRING = re.compile(r'r#+".*?"#+|r"[^"]*"|b?"(?:\\.|[^"\\])*"|b?\'(?:\\.|[^\'\\])\'')
COMMENT = re.compile(r'//.*$')


def code(line):
    """The line without string and char literals and comments, whose
    braces are not blocks."""
    return COMMENT.sub('', STRING.sub('""', line))


FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')


def non_test_lines(lines):
    """Yield (number, line) outside #[cfg(test)] items."""
    skip_depth = None
    depth = 0
    pending_test = False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if skip_depth is None and stripped.startswith('#[cfg(test)]'):
            pending_test = True
            continue
        opens, closes = code(line).count('{'), code(line).count('}')
        if pending_test and skip_depth is None:
            if opens or stripped.endswith(';'):
                pending_test = False
                if stripped.endswith(';'):
                    continue
                skip_depth = depth
            else:
                continue
        depth += opens - closes
        if skip_depth is not None:
            if depth <= skip_depth:
                skip_depth = None
            continue
        yield number, line


def functions(path):
    lines = path.read_text(encoding='utf-8', errors='replace').splitlines()
    kept = list(non_test_lines(lines))
    found = []
    i = 0
    while i < len(kept):
        number, line = kept[i]
        match = FN.match(line)
        if not match or line.rstrip().endswith(';'):
            i += 1
            continue
        depth, started, j = 0, False, i
        while j < len(kept):
            text = code(kept[j][1])
            depth += text.count('{') - text.count('}')
            started = started or '{' in text
            if started and depth <= 0:
                break
            if not started and text.rstrip().endswith(';'):
                break
            j += 1
        if started:
            found.append((match.group(6), number, kept[min(j, len(kept) - 1)][0] - number + 1))
        i += 1
    return len(lines), found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--max-file', type=int, default=500)
    parser.add_argument('--max-fn', type=int, default=80)
    args = parser.parse_args()
    root = pathlib.Path(__file__).resolve().parent.parent
    problems = []
    for path in sorted(root.glob('crates/**/*.rs')):
        rel = path.relative_to(root)
        parts = rel.parts
        if 'tests' in parts or 'benches' in parts or path.name == 'tests.rs' or 'target' in parts:
            continue
        count, fns = functions(path)
        if count > args.max_file:
            problems.append(f'{rel}: {count} lines (over {args.max_file})')
        for name, line, length in fns:
            if length > args.max_fn:
                problems.append(f'{rel}:{line}: fn {name} is {length} lines (over {args.max_fn})')
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
