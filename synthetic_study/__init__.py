"""Synthetic identifiability study: latent data with known ground truth (data), CG-VAE and baselines
(models), MCC (mcc), statistics over seeds (stats), tables and figure (report), command line (cli)."""
