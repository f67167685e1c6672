"""Exports a train.py checkpoint to ONNX for ballast (dynamo exporter, weights inside the file).

    python export.py --checkpoint model.pt --out ../estimator.onnx

Interface (checked by ballast_models::session::ModelSpec): input `features` f32 [batch, 2, 400, 4]
(build-dataset's layout), output `params_norm` f32 [batch, 6]: settings normalised to [0, 1] in
ballast_models::params::KEYS order.
"""
import argparse

import torch

import common

torch.set_num_threads(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--frames", type=int, default=400)
    a = ap.parse_args()
    ck = torch.load(a.checkpoint, map_location="cpu")
    model = common.Estimator(features=ck["features"], width=ck["width"])
    model.load_state_dict(ck["state"])
    model.eval()
    example = torch.zeros(2, 2, a.frames, ck["features"])
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        external_data=False,
        input_names=["features"],
        output_names=["params_norm"],
        dynamic_shapes=({0: batch},),
    )
    program.save(a.out, external_data=False)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
