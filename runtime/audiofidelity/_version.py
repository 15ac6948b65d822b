"""The package version, in a module of its own so that low modules (the feature cache's keys, report provenance)
read it without importing the package's public API."""
__version__ = "0.3.0"
