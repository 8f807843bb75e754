"""Pure PyTorch models: flow generators, feature extractors, sequence models."""
