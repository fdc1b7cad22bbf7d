"""``jetlab tagger export``: a trained tagger as ONNX or as an hls4ml (FPGA) project, checked on its test split.

::

    jetlab tagger export runs/jedinet --format onnx --out exports/jedinet-onnx
    jetlab tagger export runs/dnn --format hls4ml --precision 'ap_fixed<16,6>' --out exports/dnn-hls
    jetlab tagger export runs/dnn --format hls4ml --scan-precision --out exports/dnn-scan   # W = 8..18
    jetlab tagger export runs/dnn --format hls4ml --scan-precision 6,8,10,12 --out exports/dnn-scan

Needs the optional ``export`` extra: ``pip install -e ".[export]"``.
"""

from __future__ import annotations

import argparse

from jetlab.cli.settings import add_deprecated_aliases, add_model_code_flag, positive_int
from jetlab.errors import JetlabError

__all__ = ["register_export", "parse_widths"]


def register_export(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a trained tagger to ONNX or to an hls4ml FPGA project, checked on its test split",
        description="Export RUN/model.pt. onnx (every tagger): DIR/<model>.onnx, checked with onnxruntime against "
                    "PyTorch on the run's test split. hls4ml (dnn, cnn): the HLS project in DIR/hls4ml_prj, its C++ "
                    "emulation compiled with g++ and compared with the float model (accuracy, AUC, largest output "
                    "difference, non-zero multiplications). Both write DIR/report.json and DIR/report.md. "
                    'Needs the export extra: pip install -e ".[export]".',
    )
    p.add_argument("run_dir", metavar="RUN", help="run directory written by `jetlab tagger train`")
    p.add_argument("--format", required=True, choices=("onnx", "hls4ml"), dest="export_format",
                   help="onnx: any tagger, checked with onnxruntime; hls4ml: dnn and cnn, fixed point, C++ emulation")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN/export-<format>)")
    p.add_argument("--precision", metavar="TYPE",
                   help="hls4ml: fixed-point type of weights, activations and sums (default: 'ap_fixed<16,6>')")
    p.add_argument("--scan-precision", nargs="?", const="8-18", metavar="WIDTHS",
                   help="hls4ml: also compile and evaluate every total width W of ap_fixed<W,I> (I from --precision); "
                        "WIDTHS like 8-18 (the default) or 8,12,16; writes precision_scan.{png,json}")
    p.add_argument("--limit", type=positive_int, metavar="N", help="check on the first N test jets only (default: all)")
    add_model_code_flag(p)
    add_deprecated_aliases(p, {"--max-jets": "--limit"})
    p.set_defaults(run=_export)


def parse_widths(text: str) -> list[int]:
    """``"8-18"`` -> [8, ..., 18]; ``"8,12,16"`` -> [8, 12, 16]; :class:`JetlabError` otherwise."""
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-"))
            if high < low:
                raise JetlabError(f"--scan-precision {text!r}: the range runs backwards; write {high}-{low}")
            widths = list(range(low, high + 1))
        else:
            widths = [int(part) for part in text.split(",")]
    except ValueError:
        raise JetlabError(f"--scan-precision {text!r}: expected a range like 8-18 or a list like 8,12,16") from None
    if not widths or min(widths) < 1:
        raise JetlabError(f"--scan-precision {text!r}: widths must be at least 1 bit")
    return widths


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    out = Path(args.out) if args.out else Path(args.run_dir) / f"export-{args.export_format}"
    if args.export_format == "onnx":
        if args.precision or args.scan_precision:
            raise JetlabError("--precision and --scan-precision apply to --format hls4ml only")
        from jetlab.export.onnx import export_onnx  # lazy: start-up (torch)

        r = export_onnx(args.run_dir, out, max_jets=args.limit)
        m = r["metrics"]["onnxruntime"]
        print(f"{r['model']} -> {r['file']}: onnxruntime vs torch on {r['n_jets']} test jets: max |dp| = "
              f"{r['max_abs_diff']:.2e}; accuracy {m['accuracy']:.3f}, mean AUC {_fmt(m['mean_auc'])} -> {out}/report.md")
        return 0

    from jetlab.export.fixed_point import export_hls4ml  # lazy: start-up (torch)
    from jetlab.export.hls4ml import DEFAULT_PRECISION  # lazy: start-up (torch)

    widths = parse_widths(args.scan_precision) if args.scan_precision else None
    r = export_hls4ml(args.run_dir, out, precision=args.precision or DEFAULT_PRECISION, scan_widths=widths,
                      max_jets=args.limit)
    fl, fx = r["float"], r["fixed"]
    print(f"{r['model']} -> {r['project']} ({r['precision']}): on {r['n_jets']} test jets accuracy {fx['accuracy']:.3f} "
          f"(float {fl['accuracy']:.3f}), mean AUC {_fmt(fx['mean_auc'])} (float {_fmt(fl['mean_auc'])}), "
          f"max |dp| = {r['max_abs_diff']:.4f}; {r['nonzero_multiplications']} non-zero multiplications -> {out}/report.md")
    if widths:
        scan = ", ".join(f"W={row['width']}: {_fmt(row['mean_auc'])}" for row in r["precision_scan"])
        print(f"precision scan, mean AUC: {scan} -> {out}/precision_scan.png")
    return 0


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
