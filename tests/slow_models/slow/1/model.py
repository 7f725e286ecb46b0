"""Python-backend model that returns its FP32 input after sleeping ``sleep_s`` (config.pbtxt)."""

import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"]).get("parameters", {})
        self.sleep_s = float(parameters.get("sleep_s", {}).get("string_value", "2"))

    def execute(self, requests):
        time.sleep(self.sleep_s)
        responses = []
        for request in requests:
            values = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            output = pb_utils.Tensor("OUTPUT0", values.copy())
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
