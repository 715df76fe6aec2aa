"""The torch oracle: ResNet-50 written with torch.nn.functional over the same weights.

Stated independently of arch.py and of every C++ version, so that an error in one statement of the network shows
up as a disagreement. Needs torch (pip install 'pyresnet[test]').
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        from ..errors import UserError

        raise UserError("the torch oracle needs torch: pip install 'pyresnet[torch]'") from None
    return torch


class Oracle:
    """Oracle(state).logits(x): x float32 (224, 224, 3) HWC -> float32 (1000,)."""

    def __init__(self, state: Mapping[str, np.ndarray], threads: int | None = None):
        torch = _torch()
        self.torch = torch
        if threads:
            torch.set_num_threads(threads)
        # Back to torch's layouts: conv weights OHWI -> OIHW.
        self.t = {k: torch.from_numpy(np.array(v.transpose(0, 3, 1, 2) if v.ndim == 4 else v))
                  for k, v in state.items()}

    def forward(self, x: Any) -> Any:
        """NCHW tensor -> (N, 1000) logits."""
        F, t = self.torch.nn.functional, self.t

        def conv_bn(x: Any, conv: str, bn: str, stride: int, pad: int, relu: bool) -> Any:
            y = F.conv2d(x, t[f"{conv}.weight"], stride=stride, padding=pad)
            y = F.batch_norm(y, t[f"{bn}.running_mean"], t[f"{bn}.running_var"], t[f"{bn}.weight"], t[f"{bn}.bias"],
                             training=False, eps=1e-5)
            return F.relu(y) if relu else y

        x = conv_bn(x, "conv1", "bn1", 2, 3, True)
        x = F.max_pool2d(x, 3, 2, 1)
        for stage, n in enumerate((3, 4, 6, 3), start=1):
            for b in range(n):
                p = f"layer{stage}.{b}"
                stride = 2 if b == 0 and stage > 1 else 1
                out = conv_bn(x, f"{p}.conv1", f"{p}.bn1", 1, 0, True)
                out = conv_bn(out, f"{p}.conv2", f"{p}.bn2", stride, 1, True)  # v1.5: stride on the 3x3
                out = conv_bn(out, f"{p}.conv3", f"{p}.bn3", 1, 0, False)
                if b == 0:
                    x = conv_bn(x, f"{p}.downsample.0", f"{p}.downsample.1", stride, 0, False)
                x = F.relu(out + x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.linear(x, t["fc.weight"], t["fc.bias"])

    def logits(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None]
            return self.forward(xt)[0].numpy().copy()
