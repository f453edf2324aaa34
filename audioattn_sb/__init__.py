"""audioattn-sb: SpeechBrain recipes for attention in audio classification."""

__version__ = "0.1.0"
