"""Pretraining recipe: Mel-RVQ tokenizer and masked token prediction for our own MuQ."""
