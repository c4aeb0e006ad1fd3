"""predict.py's Runner whose model fails once, mid-generation: the server's fault paths end to end.

MEDGEMMA_TEST_FAULT picks the failure of the first decoding step that follows setup: "internal"
(an unexpected error carrying a device detail that must not reach the caller) or "oom" (the device
runs out of memory). Later requests run normally.
"""

import os

import torch

from predict import Runner

SECRET = "SECRET-device-detail-7f3a"


class FaultyRunner(Runner):
    def setup(self, weights=None) -> None:
        super().setup(weights)
        fault = os.environ.get("MEDGEMMA_TEST_FAULT", "internal")
        armed = [True]

        def fail_once(module, args, output):
            if armed[0]:
                armed[0] = False
                if fault == "oom":
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
                raise RuntimeError(f"CUDA error: {SECRET}")
            return output

        self.service.engine.model.lm_head.register_forward_hook(fail_once)
