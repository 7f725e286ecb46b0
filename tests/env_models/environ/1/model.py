"""Python-backend model that returns os.environ as one JSON string: what any model code could read."""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        text = json.dumps(dict(os.environ)).encode()
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("ENVIRON", np.array([text], dtype=object))])
                for _ in requests]
