"""Mixing recipe: automatic mixing from stems with Mix-Wave-U-Net and CRAFx2, baseline / boosted."""
