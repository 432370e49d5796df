"""Training a face ViT by distillation from a teacher verifier (``xfr train``)."""
