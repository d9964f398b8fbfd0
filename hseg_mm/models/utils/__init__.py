"""Building blocks shared by the heads and the losses (as mmseg's models/utils)."""
from .sampled_embedding import SampledEmbedding, full_statistics_supported

__all__ = ['SampledEmbedding', 'full_statistics_supported']
