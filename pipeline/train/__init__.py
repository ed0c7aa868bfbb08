"""Stage train's library: clips in memory (``dataset``), the training loop (``loop``), the USTC
contrastive stage 1 (``contrastive``), the model on disk (``models``) and inference (``inference``)."""
