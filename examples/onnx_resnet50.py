#!/usr/bin/env python3
"""The seeds' ONNX ResNet-50 client: one 224x224 RGB tensor in, 1000 logits out.

    python examples/onnx_resnet50.py --url localhost:8000

Served in the demo by the python-backend stand-in in deploy/demo/models/onnx_resnet50
(same model name, input_0 and output_0 as the ONNX export).
"""
import sys
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import client as connect, headers, parser  # noqa: E402


def main(argv=None) -> int:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    client = connect(args)
    try:
        # Prepare dummy input data (e.g., for ResNet-50)
        input_shape = (1, 3, 224, 224)
        data = np.random.randn(*input_shape).astype(np.float32)

        inputs = [httpclient.InferInput("input_0", input_shape, "FP32")]
        inputs[0].set_data_from_numpy(data)

        # Request inference
        results = client.infer("onnx_resnet50", inputs, headers=headers(args.user, args.password))
    finally:
        client.close()

    # Get output
    output_data = results.as_numpy("output_0")
    print(f"Inference result shape: {output_data.shape}, dtype {output_data.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
