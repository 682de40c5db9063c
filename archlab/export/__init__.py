"""Export: an ArchSpec and its weights to a deployable file (ONNX, TorchScript, torch.export), checked on output."""

# torch-free, so the CLI can refuse an unknown format before importing torch (archlab.export.exporter checks it)
FORMAT_NAMES = ("onnx", "torchscript", "exported")
