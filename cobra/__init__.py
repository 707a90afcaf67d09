"""cobra: generative retrieval for recommendation, the package behind the book.

Semantic IDs (:mod:`cobra.sid`), HSTU (:mod:`cobra.hstu`) and COBRA's
sparse-plus-dense generation on MovieLens (:mod:`cobra.movielens`,
:mod:`cobra.data`). Each module's docstring names the chapter that explains it.
"""

__version__ = "0.1.0"
