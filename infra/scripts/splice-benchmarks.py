"""Replaces what stands between `<!-- NAME:start -->` and `<!-- NAME:end -->`
in BENCHMARKS.md with the contents of a file.

usage: splice-benchmarks.py NAME FILE
"""
import pathlib
import sys

name, source = sys.argv[1], pathlib.Path(sys.argv[2])
bench = pathlib.Path("BENCHMARKS.md")
start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
head, rest = bench.read_text().split(start, 1)
_, tail = rest.split(end, 1)
bench.write_text(f"{head}{start}\n{source.read_text()}{end}{tail}")
