"""Pretraining recipe: Mel-RVQ tokenizer (stage 1) and masked token prediction (stage 2) for our own MuQ.

``booster fit --config pretraining/<name>`` (configs ``debug``, ``mini``, ``continue`` in this folder) runs
both stages and exports the encoder in the official layout (config.json + model.safetensors);
``python -m booster.recipes.pretraining.train`` runs the stages one by one (the command that made muq-mini).
"""
MODULE = "booster.recipes.pretraining.recipe:PretrainingModule"
DATA = "booster.recipes.pretraining.recipe:PretrainingData"
