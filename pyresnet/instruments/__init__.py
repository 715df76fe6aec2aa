"""The instruments that show what each stage buys: bench (check then time, versions and peers, rows interleaved),
report (what a bench result says: the console table, the plot, the README's tables), profile (per layer), diff (what
a stage changed), codegen (the C++ a generating stage builds from), and the peers themselves (peers.PEERS, the one
list of them).

`import pyresnet` imports none of them; the CLI imports bench and peers for the defaults its options show
(bench.ROUNDS, peers.TORCH_MODES), and the others when a command needs them.
"""
