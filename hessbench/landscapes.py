"""Closed-form toy losses from the papers.

Each section belongs to one paper; functions are pure torch and vectorised over
a leading batch of independent chains.
"""
from __future__ import annotations

# --- Wei & Schwab, "How noise affects the Hessian spectrum" (valley toys) ---


# --- Zhu et al. (ICML 2019), App. D.1: two-basin 2-D surface ---
