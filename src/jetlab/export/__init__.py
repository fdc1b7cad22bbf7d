"""Exporting trained taggers for inference outside PyTorch: ONNX (any tagger) and hls4ml
(FPGA firmware in HLS C++ with fixed-point arithmetic, Duarte et al., arXiv:1804.06913).

Every export is checked on the run's own test split, rebuilt from RUN/config.yaml and the
standardisation stored in RUN/model.pt (:mod:`.inputs`):

* :func:`~jetlab.export.onnx.export_onnx` writes ``<model>.onnx`` and compares
  onnxruntime's class probabilities with PyTorch's;
* :func:`~jetlab.export.fixed_point.export_hls4ml` writes the hls4ml project, compiles its C++
  emulation with g++, and compares the fixed-point model's accuracy and AUC with the float
  model's; :func:`~jetlab.export.fixed_point.scan_precision` repeats that for several bit widths.

onnx, onnxscript, onnxruntime and hls4ml are the optional ``export`` extra
(``pip install -e ".[export]"``); they are imported only when an export runs.
"""

from jetlab.export.fixed_point import export_hls4ml, scan_precision
from jetlab.export.inputs import RunTestSet, load_run_test_set
from jetlab.export.onnx import export_onnx

__all__ = ["RunTestSet", "export_hls4ml", "export_onnx", "load_run_test_set", "scan_precision"]
