"""The package's benchmarks: each module writes ``benchmarks/results/<name>.json`` (command, data, machine, load
average, date), from which ``benchmarks/RESULTS.md`` is generated (``python -m benchmarks.make_results_table``).

Run one from the repository root as a module, ``python -m benchmarks.<name> --help``; the shared pieces (result
files, machine description, timing, intervals) are in :mod:`benchmarks._common`.
"""
