"""Accuracy instruments for reduced precision: calibrate (activation ranges for int8), agree (agreement with the
fp32 network over photos and their variants, for our stages and the peers alike) and eval (top-1/top-5 over a
labelled folder, for users with real weights and data).

Each module is imported by the CLI command that needs it.
"""
