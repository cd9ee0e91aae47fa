"""Consistory Studio engine: model loading, the denoising loop, ConsiStory and identities. No Qt here.

Public entry points (import lazily: torch and diffusers take seconds to import)::

    from engine.model_loader import load_model        # source -> LoadedModel
    from engine.request import GenerationSpec         # what to generate
    from engine.generate import generate              # plain or ConsiStory, with progress and cancel
"""

__all__: list[str] = []
