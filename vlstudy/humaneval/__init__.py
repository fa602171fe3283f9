"""Human evaluation of zero-shot instruction following (Youku-mPLUG §5.4, Fig. 5) and caption preference (Panda-70M).

One module per step:

- :mod:`~vlstudy.humaneval.protocol`: sample videos and Chinese instructions, collect responses, write a blinded
  rating package (``items.json``, ``frames/``, ``rating.html``) and its key (kept apart).
- :mod:`~vlstudy.humaneval.page`: the self-contained offline rating page.
- :mod:`~vlstudy.humaneval.ratings`: import and validate the ratings CSV the page exports; de-blind it.
- :mod:`~vlstudy.humaneval.simulate`: a *simulated* rater panel with known truth (the embedded default).
- :mod:`~vlstudy.humaneval.analysis`: grade shares, mean scores with bootstrap intervals, paired tests,
  inter-rater agreement, preference ratios and the correlation with automatic metrics.
"""
