"""Synthetic identifiability study: benchmarks with known ground truth (data), the premise audit (premise),
ensembles of CG-VAE and its baselines (models) and their training (fit), scores (mcc, support_recovery),
statistics and the blind alpha rule (stats), one cell (runner), the grid on disk (grid, settings), tables
and the decision rule (report), command line (cli)."""
