"""One small entry module per DVC stage; see dvc.yaml."""
