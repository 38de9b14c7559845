"""The PyTorch engine: experts, routers, sparse dispatch and the training loop."""
