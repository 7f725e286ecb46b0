#!/usr/bin/env python3
"""The seeds' PyTorch (LibTorch) DenseNet client: one image tensor in, class probabilities out.

    python examples/pytorch_densenet.py --url localhost:8000

Served in the demo by the python-backend stand-in in deploy/demo/models/pytorch_densenet
(same model name, INPUT__0 and OUTPUT__0 as a TorchScript model).
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
        # Example input for an image classification model
        data = np.random.randn(1, 3, 224, 224).astype(np.float32)

        inputs = [httpclient.InferInput("INPUT__0", [1, 3, 224, 224], "FP32")]
        inputs[0].set_data_from_numpy(data)

        # Call Triton
        response = client.infer("pytorch_densenet", inputs, headers=headers(args.user, args.password))
    finally:
        client.close()

    # Parse output
    probabilities = response.as_numpy("OUTPUT__0")
    predicted_class = np.argmax(probabilities)
    print(f"OUTPUT__0 shape: {probabilities.shape}, dtype {probabilities.dtype}")
    print(f"Predicted class ID: {predicted_class}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
