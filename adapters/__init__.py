"""Host presets (installed as ``booster.adapters``): one module per host model.

``booster.adapters.htdemucs.boost(model, backbone, ...)`` and
``booster.adapters.openunmix.boost(model, backbone, ...)`` return :class:`booster.injection.Boosted` models.
"""
