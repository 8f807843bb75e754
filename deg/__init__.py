"""deg: a Jupyter-first replication of DeepEthogram (Bohnslav et al., eLife 2021)."""
__version__ = "0.1.0"
