#!/usr/bin/env python3
"""The seeds' Stable Diffusion client: a prompt in, an image out (Open Inference Protocol).

    python examples/stable_diffusion.py --url localhost:8000 --out generated_image.png

Served in the demo by the python-backend stand-in in deploy/demo/models/stable_diffusion
(same model name, input PROMPT and output IMAGES as a real pipeline).
"""
import sys
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import client as connect, headers, parser  # noqa: E402


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--prompt", default="A futuristic city in the style of cyberpunk")
    p.add_argument("--out", default="generated_image.png", help="where to save the image")
    args = p.parse_args(argv)
    # Connect to the server (HAProxy or direct instance)
    client = connect(args)
    try:
        input_data = np.array([args.prompt], dtype=object)

        # Setup inputs according to the model configuration
        inputs = [httpclient.InferInput("PROMPT", [1], "BYTES")]
        inputs[0].set_data_from_numpy(input_data)

        # Run inference
        response = client.infer("stable_diffusion", inputs, headers=headers(args.user, args.password))
    finally:
        client.close()

    # Extract and save the generated image
    images = response.as_numpy("IMAGES")
    image_data = images[0]
    image = Image.fromarray(image_data.astype(np.uint8))
    image.save(args.out)
    print(f"IMAGES shape: {images.shape}, dtype {images.dtype}")
    print(f"Saved {image.size[0]}x{image.size[1]} image to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
