"""The exporters: each model family's export module (``FAMILY = "<name>"``), the driver (``export.py``) and the
original checkpoints' download (``download.py``), installed as ``audiofidelity.exporters`` so that
``audiofidelity models build`` works from a pip install. Nothing in the runtime imports them while evaluating; they
import torch and the runtime, never the other way round."""
