"""The model layer: :class:`~latent_widgets.model.latent_model.LatentModel` for Keras and ONNX, the graph
cuts that find the bottleneck, training, and the study's networks (:mod:`latent_widgets.model.zoo`).
"""
