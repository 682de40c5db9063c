"""Export: an ArchSpec and its weights to a deployable file (ONNX, TorchScript, torch.export), checked on output."""
