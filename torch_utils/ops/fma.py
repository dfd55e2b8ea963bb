"""Fused multiply-add with broadcasting: a * b + c."""
import torch

#----------------------------------------------------------------------------

def fma(a, b, c):
    """a * b + c (broadcast), differentiable to any order."""
    return torch.addcmul(c, a, b)

#----------------------------------------------------------------------------
