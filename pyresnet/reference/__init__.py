"""The references every version is held to: the `py` version (numpy_ref.py: the algorithm stated readably), the
torch oracle (oracle.py: the network again in torch.nn.functional) and the checker (check.py: top-5 and tolerance).
"""
