"""Python-backend model that holds ``ballast_mb`` MiB while loaded (touched, so it is resident:
the node-agent's RSS measurement sees it) and echoes its FP32 input after ``delay_ms``, one
request at a time. tests/am/test_model_moves_on_yarn.py builds a repository of three from it."""

import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"]).get("parameters", {})

        def value(key, default):
            return float(parameters.get(key, {}).get("string_value", default))

        self.delay_s = value("delay_ms", "0") / 1000.0
        self.ballast = b"\x01" * (int(value("ballast_mb", "0")) << 20)  # written, so resident

    def execute(self, requests):
        responses = []
        for request in requests:
            if self.delay_s:
                time.sleep(self.delay_s)  # a sleep, not a spin: the test machine's cores stay free
            values = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", values.copy())]))
        return responses
