"""Stand-in for DenseNet as TorchScript: INPUT__0 [N, 3, 224, 224] -> OUTPUT__0 [N, 1000].

A softmax over a fixed random projection (seeded) of 4x4-pooled image features: each row
sums to 1, so the seeds' client can take its argmax as the predicted class.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

CLASSES = 1000
POOL = 4


class TritonPythonModel:
    def initialize(self, args):
        features = 3 * POOL * POOL
        self.weights = np.random.default_rng(121).standard_normal((features, CLASSES)).astype(np.float32)
        self.weights /= np.sqrt(features)

    def execute(self, requests):
        responses = []
        for request in requests:
            images = pb_utils.get_input_tensor_by_name(request, "INPUT__0").as_numpy()
            n, c, h, w = images.shape
            pooled = images.reshape(n, c, POOL, h // POOL, POOL, w // POOL).mean(axis=(3, 5)).reshape(n, -1)
            logits = pooled @ self.weights
            logits -= logits.max(axis=1, keepdims=True)
            probabilities = np.exp(logits)
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            output = pb_utils.Tensor("OUTPUT__0", probabilities.astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
