"""The Whisper pieces ASR and the audio features share: the offline models (``models``), the
frame geometry of its front end and encoder (``geometry``), and the encoder states ASR keeps for
features@audio (``encoder_states``)."""
