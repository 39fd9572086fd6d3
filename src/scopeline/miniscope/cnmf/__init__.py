"""Pure CNMF algorithms (no I/O): noise, deconvolution, temporal and spatial updates, metrics."""
