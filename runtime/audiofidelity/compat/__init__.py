"""Drop-in replacements for the toolkits researchers already call: ``audioldm_eval`` and ``frechet_audio_distance``."""
