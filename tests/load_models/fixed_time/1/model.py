"""Python-backend model that returns its FP32 input after a fixed time per request."""

import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"]).get("parameters", {})
        self.delay_s = float(parameters.get("delay_ms", {}).get("string_value", "100")) / 1000.0

    def execute(self, requests):
        responses = []
        for request in requests:
            time.sleep(self.delay_s)  # a sleep, not a spin: the test machine's cores stay free
            values = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", values.copy())]))
        return responses
