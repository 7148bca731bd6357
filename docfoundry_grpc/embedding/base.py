"""The interface every text embedder of the service implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors.

    Contract:

    * ``embed(texts)`` returns a C-contiguous ``float32`` array of shape
      ``(len(texts), dimension)``, row ``i`` belonging to ``texts[i]``; an empty
      input gives shape ``(0, dimension)``.
    * Every row has L2 norm 1, so the search layer can rank by a plain dot product
      (which then *is* the cosine similarity) without renormalising stored or query
      vectors.
    * ``embed`` may be called concurrently from several threads (the gRPC servicer
      runs it through ``asyncio.to_thread``), so implementations keep no mutable
      state across or during calls.
    * ``model_name`` identifies the vector space: vectors from embedders with
      different names (or dimensions) must never be compared or stored in one index.
    * ``precision`` is the arithmetic the model runs in ("float32", "int8"): a speed
      setting within one vector space, not another space.
    """

    model_name: str
    dimension: int
    precision: str

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...
