"""What runs beside the product: the CLI, a local cluster, bench, chaos, the
simulation and the cart workload. The data path never imports these."""
