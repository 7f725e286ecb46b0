"""Stand-in for ResNet-50 exported to ONNX: input_0 [N, 3, 224, 224] -> output_0 [N, 1000].

Logits are a fixed random projection (seeded) of the per-channel mean and spread of the
image: cheap, deterministic, and sensitive to the input, which is all the examples and
the gateways need. The seeds' interface is kept exactly.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

CLASSES = 1000


class TritonPythonModel:
    def initialize(self, args):
        self.weights = np.random.default_rng(50).standard_normal((6, CLASSES)).astype(np.float32)

    def execute(self, requests):
        responses = []
        for request in requests:
            images = pb_utils.get_input_tensor_by_name(request, "input_0").as_numpy()
            features = np.concatenate([images.mean(axis=(2, 3)), images.std(axis=(2, 3))], axis=1)
            logits = (features @ self.weights).astype(np.float32)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("output_0", logits)]))
        return responses
