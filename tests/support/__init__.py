"""Helpers shared by the tests (no tests here), imported as ``support.<module>``.

``standin_data``: a tiny data pipeline following the data contract, handed to ``run(cfg,
data=...)``; ``engine``: configs of the regress family on it, and the subprocess runner;
``galip``: a tiny GALIP family and batch.
"""
