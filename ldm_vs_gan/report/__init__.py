"""The comparison report (``python -m ldm_vs_gan.compare``): ``collect`` reads run directories,
``plots`` draws the figures (matplotlib), ``render`` writes report.md and a self-contained
report.html (images embedded as base64)."""
