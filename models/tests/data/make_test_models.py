"""Writes the tiny ONNX models the session tests load (committed; rerun to regenerate).

affine.onnx: y = x @ W + b with x float32 [batch, 4] (batch dynamic) and y float32 [batch, 2];
W[i][j] = (i + 1) * (j + 1) / 10, b = [0.5, -0.5], so tests can compute the expected output by hand.
"""
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

here = pathlib.Path(__file__).parent
w = np.array([[(i + 1) * (j + 1) / 10 for j in range(2)] for i in range(4)], dtype=np.float32)
b = np.array([0.5, -0.5], dtype=np.float32)
graph = helper.make_graph(
    [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
    "affine",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
    initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="ballast-tests")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, here / "affine.onnx")

# estimator_probe.onnx: the estimator's interface (features f32 [batch, 2, 400, 4] -> params_norm f32
# [batch, 6]) with a transparent rule instead of a trained network: every normalised setting is 0.5 except
# makeup, 0.5 + (mean wet feature - mean dry feature) / 48, which denormalises (makeup range -24..24 dB) to
# exactly that mean level difference in dB. Tests the plumbing features -> ONNX -> settings end to end.
w = np.zeros((2, 6), dtype=np.float32)
w[0, 5], w[1, 5] = -1.0 / 48.0, 1.0 / 48.0
b = np.full(6, 0.5, dtype=np.float32)
graph = helper.make_graph(
    [
        helper.make_node("ReduceMean", ["features", "axes"], ["m"], keepdims=0),
        helper.make_node("MatMul", ["m", "W"], ["mw"]),
        helper.make_node("Add", ["mw", "b"], ["params_norm"]),
    ],
    "estimator_probe",
    [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 2, 400, 4])],
    [helper.make_tensor_value_info("params_norm", TensorProto.FLOAT, ["batch", 6])],
    initializer=[
        numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes"),
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(b, "b"),
    ],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="ballast-tests")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, here / "estimator_probe.onnx")
