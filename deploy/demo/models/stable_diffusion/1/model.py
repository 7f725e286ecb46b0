"""Stand-in for Stable Diffusion: PROMPT -> one IMAGES tensor [1, H, W, 3], FP32 in 0..255.

The CPU Triton bundle has no diffusion pipeline; this keeps the seeds' interface (names,
types, shapes) so clients and gateways are exercised for real. The image is a gradient
whose colours come from a hash of the prompt: the same prompt gives the same image.
"""

import hashlib
import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.size = int(config.get("parameters", {}).get("image_size", {}).get("string_value", "64"))
        ramp = np.linspace(0.0, 1.0, self.size, dtype=np.float32)
        self.rows, self.cols = np.meshgrid(ramp, ramp, indexing="ij")

    def _image(self, prompt: bytes) -> np.ndarray:
        digest = np.frombuffer(hashlib.sha256(prompt).digest()[:9], dtype=np.uint8).astype(np.float32)
        start, end, phase = digest[0:3], digest[3:6], digest[6:9] / 255.0
        mix = (self.rows[..., None] + self.cols[..., None] * phase) / (1.0 + phase)
        return (start + (end - start) * mix).astype(np.float32)

    def execute(self, requests):
        responses = []
        for request in requests:
            prompts = pb_utils.get_input_tensor_by_name(request, "PROMPT").as_numpy().reshape(-1)
            if prompts.size == 0:
                error = pb_utils.TritonError("PROMPT must hold one string")
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            prompt = prompts[0] if isinstance(prompts[0], bytes) else str(prompts[0]).encode()
            images = self._image(prompt)[None, ...]
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("IMAGES", images)]))
        return responses
