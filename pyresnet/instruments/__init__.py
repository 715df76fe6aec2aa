"""The instruments that show what each stage buys: bench (check then time, versions and peers), profile (per
layer), diff (what a stage changed), codegen (the C++ a generating stage builds from), and the peers themselves.

Each module is imported by the CLI command that needs it, so `import pyresnet` stays light.
"""
